from __future__ import annotations

from django.apps import AppConfig


class DirectorConfig(AppConfig):
    name = "director"
    verbose_name = "Director registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import got_request_exception

        from director import checks, views
        from director.ops import followers

        checks.register()
        # A request failing with a database error answers 503, not 500 (views.server_error).
        got_request_exception.connect(views.note_request_exception, dispatch_uid="director-db")
        # What follows the settings in every process (the stat engine), listed in followers.
        followers.follow_in_every_process()
