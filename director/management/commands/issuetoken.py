"""``python manage.py issuetoken /origins/<site>``: create a registration token."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from director.models import RegistrationToken


class Command(BaseCommand):
    help = (
        "Create a registration token for one registry prefix (/origins/<site> or "
        "/caches/<site>) and print its secret once, alone on stdout, for scripts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("registry_prefix", help="/origins/<site> or /caches/<site>")
        parser.add_argument("--description", default="", help="A note shown in the admin.")
        parser.add_argument(
            "--namespace",
            action="append",
            default=[],
            metavar="PATH",
            help="A namespace the token's ads may serve (repeatable); none: any namespace.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            token, secret = RegistrationToken.issue(
                options["registry_prefix"], options["description"], options["namespace"]
            )
        except ValidationError as error:
            messages = "; ".join(m for ms in error.message_dict.values() for m in ms)
            raise CommandError(messages) from None
        self.stderr.write(f"Token #{token.pk} for {token.registry_prefix} (shown only once):")
        self.stdout.write(secret)
