"""``python manage.py approvenamespace <prefix>...``: approve (or deny) registrations."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from director.federation.registry import decide
from director.models import NamespaceRegistration, RegistrationStatus


class Command(BaseCommand):
    help = (
        "Approve registered prefixes (/origins/<host:port>, /caches/<site>, namespaces) so "
        "that their servers may advertise; --deny refuses them. For scripts: the admin's "
        "approve and deny actions do the same."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefixes", nargs="+", metavar="PREFIX")
        parser.add_argument("--deny", action="store_true", help="Deny instead of approving.")
        parser.add_argument(
            "--by", default="", help="Who decided (logged; default: the user running this)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        prefixes: list[str] = options["prefixes"]
        known = set(
            NamespaceRegistration.objects.filter(prefix__in=prefixes).values_list(
                "prefix", flat=True
            )
        )
        unknown = [prefix for prefix in prefixes if prefix not in known]
        if unknown:
            raise CommandError(f"not registered: {', '.join(unknown)}")
        status = RegistrationStatus.DENIED if options["deny"] else RegistrationStatus.APPROVED
        by = options["by"] or f"{getpass.getuser()} (manage.py approvenamespace)"
        changed = decide(prefixes, status, by)
        self.stdout.write(f"{changed} of {len(prefixes)} registration(s) {status.label.lower()}")
