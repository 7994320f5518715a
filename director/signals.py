"""Any saved or deleted registry row bumps the generation (admin edits, shell, commands)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save

from director import models
from director.registry import registry_changed

REGISTRY_MODELS = (
    models.Server,
    models.Namespace,
    models.Downtime,
    models.StatSettings,
    models.GeoIPOverride,
)


def _changed(sender: type, **kwargs: Any) -> None:
    if kwargs.get("raw"):  # loaddata
        return
    registry_changed()


def connect() -> None:
    for model in REGISTRY_MODELS:
        post_save.connect(_changed, sender=model, dispatch_uid=f"director-{model.__name__}-save")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"director-{model.__name__}-del")
