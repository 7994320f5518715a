"""The director's own rows: its settings, the health-test lease and the change counter."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import BaseValidator, MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from director.snapshot import DEFAULT_SETTINGS, SETTING_FIELDS, DirectorSettings
from director.wire.types import SortMethod as WireSortMethod

logger = logging.getLogger(__name__)


def _validators(spec: dataclasses.Field[object]) -> list[BaseValidator]:
    found: list[BaseValidator] = []
    if spec.metadata["minimum"] is not None:
        found.append(MinValueValidator(spec.metadata["minimum"]))
    if spec.metadata["maximum"] is not None:
        found.append(MaxValueValidator(spec.metadata["maximum"]))
    return found


# Each field takes its default, bounds and help from the one definition of its setting.


def _float(name: str) -> models.FloatField[float, float]:
    spec = SETTING_FIELDS[name]
    return models.FloatField(
        default=spec.default, validators=_validators(spec), help_text=spec.metadata["help_text"]
    )


def _count(name: str) -> models.PositiveIntegerField[int, int]:
    spec = SETTING_FIELDS[name]
    return models.PositiveIntegerField(
        default=spec.default, validators=_validators(spec), help_text=spec.metadata["help_text"]
    )


def _flag(name: str) -> models.BooleanField[bool, bool]:
    spec = SETTING_FIELDS[name]
    return models.BooleanField(default=spec.default, help_text=spec.metadata["help_text"])


class StatSettings(models.Model):
    """The single row of director and stat parameters (Pelican's Director.*).

    Saved changes reach every running process within about a second.
    """

    class SortMethod(models.TextChoices):
        DISTANCE = WireSortMethod.DISTANCE.value, "distance"
        DISTANCE_AND_LOAD = (
            WireSortMethod.DISTANCE_AND_LOAD.value,
            "distanceAndLoad (same as distance)",
        )
        RANDOM = WireSortMethod.RANDOM.value, "random"
        ADAPTIVE = WireSortMethod.ADAPTIVE.value, "adaptive"

    stat_timeout = _float("stat_timeout")
    stat_concurrency_limit = _count("stat_concurrency_limit")
    stat_max_wait = _float("stat_max_wait")
    stat_max_waiters = _count("stat_max_waiters")
    redirect_timeout = _float("redirect_timeout")
    cache_presence_ttl = _float("cache_presence_ttl")
    cache_presence_capacity = _count("cache_presence_capacity")
    check_origin_presence = _flag("check_origin_presence")
    check_cache_presence = _flag("check_cache_presence")
    assume_presence_at_single_origin = _flag("assume_presence_at_single_origin")
    max_stat_responses = _count("max_stat_responses")
    sort_method = models.CharField(
        max_length=20, choices=SortMethod.choices, default=DEFAULT_SETTINGS.sort_method.value
    )
    startup_grace = _float("startup_grace")
    filter_caches_in_error_state = _flag("filter_caches_in_error_state")
    ejection_consecutive_failures = _count("ejection_consecutive_failures")
    ejection_base_time = _float("ejection_base_time")
    ejection_max_time = _float("ejection_max_time")
    adaptive_working_set = _count("adaptive_working_set")
    status_ewma_time_constant = _float("status_ewma_time_constant")
    health_test_interval = _float("health_test_interval")
    health_test_timeout = _float("health_test_timeout")
    health_failure_grace = _float("health_failure_grace")
    health_failure_weight = _float("health_failure_weight")
    max_inflight_requests = _count("max_inflight_requests")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "director settings"
        verbose_name_plural = "director settings"
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="director_statsettings_singleton"),
        ]

    def __str__(self) -> str:
        return "Director settings"

    def clean(self) -> None:
        if self.ejection_max_time < self.ejection_base_time:
            raise ValidationError({"ejection_max_time": "Must be at least the base ejection time."})
        if self.redirect_timeout <= self.stat_timeout + self.stat_max_wait:
            raise ValidationError(
                {
                    "redirect_timeout": (
                        "Must be longer than the stat timeout plus the stat max wait: a stat "
                        "cut short by the redirect deadline says nothing about its server, "
                        "so a hung server would never be ejected."
                    )
                }
            )

    def save(self, *args: Any, **kwargs: Any) -> None:  # Django's own signature, passed on
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> StatSettings:
        settings_row, _ = cls.objects.get_or_create(pk=1)
        return settings_row

    def as_settings(self) -> DirectorSettings:
        """This row as the frozen settings that the snapshot carries."""
        values = {
            item.name: getattr(self, item.name) for item in dataclasses.fields(DirectorSettings)
        }
        try:
            values["sort_method"] = WireSortMethod(self.sort_method)
        except ValueError:  # only raw SQL can store a value outside the choices
            logger.warning(
                "sort_method %r is not known; %s is used",
                self.sort_method,
                DEFAULT_SETTINGS.sort_method,
            )
            values["sort_method"] = DEFAULT_SETTINGS.sort_method
        return DirectorSettings(**values)

    @classmethod
    def current(cls) -> DirectorSettings:
        """The stored settings, or the defaults while no row has been saved."""
        row = cls.objects.filter(pk=1).first()
        return row.as_settings() if row is not None else DEFAULT_SETTINGS


class HealthTestLease(models.Model):
    """Which director process runs the health tests now (one per database)."""

    holder = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="director_healthlease_singleton")
        ]

    def __str__(self) -> str:
        return f"Health tests run by {self.holder or 'nobody'}"


class RegistryState(models.Model):
    """One row whose ``generation`` moves on every registry change.

    Each director process compares it with its snapshot's generation (at most once per
    second) and rebuilds the snapshot when it moved: that is how processes sharing one
    database converge.
    """

    generation = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="director_registrystate_singleton")
        ]

    def __str__(self) -> str:
        return f"Registry generation {self.generation}"
