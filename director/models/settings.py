"""The director's own rows: its settings, the health-test lease and the change counter."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import BaseValidator, MaxValueValidator, MinValueValidator
from django.db import connection, models, transaction
from django.db.models import Q

from director.models.choices import wire_choices
from director.snapshot import DEFAULT_SETTINGS, SETTING_FIELDS, DirectorSettings
from director.wire.types import SortMethod

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
        max_length=20,
        choices=wire_choices(
            SortMethod, {SortMethod.DISTANCE_AND_LOAD: "distanceAndLoad (same as distance)"}
        ),
        default=DEFAULT_SETTINGS.sort_method.value,
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
    shed_queue_target = _float("shed_queue_target")
    shed_queue_interval = _float("shed_queue_interval")
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
        """Each error names its numbers and lands on the fields this edit changed (on the
        first of them the rule names when it is a new row or nothing of it changed)."""
        stored = StatSettings.objects.filter(pk=self.pk or 1).first()

        def at_fault(*names: str) -> list[str]:
            changed = [
                name
                for name in names
                if stored is None or getattr(stored, name) != getattr(self, name)
            ]
            return changed or [names[-1]]

        errors: dict[str, str] = {}
        if self.ejection_max_time < self.ejection_base_time:
            message = (
                f"The longest ejection, {float(self.ejection_max_time)} s, must be at least the "
                f"base ejection time, {float(self.ejection_base_time)} s."
            )
            errors.update(
                dict.fromkeys(at_fault("ejection_base_time", "ejection_max_time"), message)
            )
        if self.redirect_timeout <= self.stat_timeout + self.stat_max_wait:
            stat, wait, deadline = (
                float(self.stat_timeout),
                float(self.stat_max_wait),
                float(self.redirect_timeout),
            )
            message = (
                f"stat timeout {stat} s + max wait {wait} s must be below the redirect "
                f"timeout {deadline} s: a stat cut short by the redirect deadline "
                "says nothing about its server, so a hung server would never be ejected."
            )
            errors.update(
                dict.fromkeys(
                    at_fault("stat_timeout", "stat_max_wait", "redirect_timeout"), message
                )
            )
        if errors:
            raise ValidationError(errors)

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
            values["sort_method"] = SortMethod(self.sort_method)
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
    second): when only ``generation`` moved, it reads the servers stamped with a later
    ``change_seq`` and applies them as a delta; when ``full_generation`` moved too
    (settings, GeoIP overrides, a server deleted or renamed), it rebuilds. That is how
    processes sharing one database converge. Writers take this row's lock to move the
    counter, so changes commit in the order of their generations.
    """

    generation = models.BigIntegerField(default=0)
    full_generation = models.BigIntegerField(
        default=0, help_text="The generation of the last change that needs a full rebuild."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="director_registrystate_singleton")
        ]

    def __str__(self) -> str:
        return f"Registry generation {self.generation}"

    @classmethod
    def read(cls) -> tuple[int, int]:
        """(generation, full_generation), (0, 0) before the first change."""
        row = cls.objects.filter(pk=1).values_list("generation", "full_generation").first()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    @classmethod
    def record_change(cls, *, full: bool, after_commit: Callable[[int], None]) -> int:
        """The generation of the calling transaction's change (``transaction.atomic``
        required): the first call moves the counter, under its row lock, and registers
        ``after_commit(generation)``; later calls in the same transaction return it
        (``full`` may still raise full_generation to it). A rolled-back transaction
        records nothing: Django drops its pending callbacks, and with them the marker.
        """
        pending = _pending_change()
        if pending is not None:
            if full:
                cls.objects.filter(pk=1).update(full_generation=pending.generation)
            return pending.generation
        generation = cls._move(full)
        if generation is None:
            cls.objects.create(pk=1, generation=0, full_generation=0)
            generation = cls._move(full)
            assert generation is not None
        transaction.on_commit(_PendingChange(generation, after_commit))
        return generation

    @classmethod
    def _move(cls, full: bool) -> int | None:
        """Move the counter and read it back in one statement (UPDATE ... RETURNING, in
        SQLite 3.35+ and PostgreSQL): an ad is on the hot path of the registry."""
        table = connection.ops.quote_name(cls._meta.db_table)
        also = ", full_generation = generation + 1" if full else ""
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET generation = generation + 1{also} WHERE id = 1 "
                "RETURNING generation"
            )
            row = cursor.fetchone()
        return int(row[0]) if row else None


class _PendingChange:
    """The callback a transaction's change registers; finding it marks the transaction."""

    def __init__(self, generation: int, after_commit: Callable[[int], None]) -> None:
        self.generation = generation
        self.after_commit = after_commit

    def __call__(self) -> None:
        self.after_commit(self.generation)


def _pending_change() -> _PendingChange | None:
    # Django keeps pending callbacks as (savepoint ids, callback, robust) and drops them
    # on rollback. Not a public API: tests/test_registry_changes.py pins the behaviour.
    for entry in connection.run_on_commit:
        if isinstance(entry[1], _PendingChange):
            return entry[1]
    return None


class DirectorAd(models.Model):
    """A director's own advertisement in the shared registry: which directors serve this
    federation now (``/api/v1.0/director/directors`` and discovery list the live ones).

    Each serving process renews its director's row every few seconds; a director that
    stops deletes it, one that dies drops out when its expiry passes.
    """

    name = models.CharField(max_length=255, unique=True)
    url = models.CharField(max_length=1000, help_text="Where servers and clients reach it.")
    instance_id = models.CharField(max_length=64)
    version = models.CharField(max_length=100)
    started_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "director advertisement"

    def __str__(self) -> str:
        return f"{self.name} at {self.url}"
