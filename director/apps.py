from __future__ import annotations

from django.apps import AppConfig


class DirectorConfig(AppConfig):
    name = "director"
    verbose_name = "Director registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from director import checks, presence, registry

        checks.register()
        # The stat engine follows every snapshot: new settings, servers come and go.
        registry.on_rebuild(presence.follow_snapshot)
