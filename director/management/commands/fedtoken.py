"""``python manage.py fedtoken --scope SCOPE [--lifetime SECONDS]``: a federation token."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from director.federation import issuer

MAX_LIFETIME = 365 * 24 * 3600.0


class Command(BaseCommand):
    help = (
        "Mint a token signed by the federation issuer (this director's current key) and "
        "print it alone "
        "on stdout, e.g. for an external Prometheus reading discoverServers: "
        "--scope pelican.director_service_discovery. The signing key stays published "
        "until the token expires."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--scope", action="append", required=True, help="Repeatable.")
        parser.add_argument("--lifetime", type=float, default=3600.0, help="Seconds (3600).")
        parser.add_argument("--subject", default="operator", help="The sub claim (operator).")
        parser.add_argument(
            "--audience",
            action="append",
            default=[],
            help="Repeatable (default: this director's URL).",
        )
        parser.add_argument(
            "--issuer",
            default="",
            help="The iss claim: the federation's discovery URL as servers know it "
            "(default: DIRECTOR_FEDERATION_DISCOVERY_URL, else DIRECTOR_EXTERNAL_URL as "
            "discovery gives it: https, no :443).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        lifetime: float = options["lifetime"]
        if not 0 < lifetime <= MAX_LIFETIME:
            raise CommandError(f"--lifetime must be between 0 and {MAX_LIFETIME:g} seconds")
        external = str(settings.DIRECTOR_EXTERNAL_URL)
        issuer_url = options["issuer"] or issuer.federation_issuer(external)
        if not issuer_url:
            raise CommandError(
                "the issuer is the federation's discovery URL or this director's public "
                "URL: set DIRECTOR_FEDERATION_DISCOVERY_URL or DIRECTOR_EXTERNAL_URL, or "
                "give --issuer"
            )
        director_url = issuer.issuer_url(external) if external else issuer_url
        signer = issuer.signer()
        now = timezone.now()
        token = signer.mint(
            issuer=issuer_url,
            subject=options["subject"],
            audience=options["audience"] or [director_url],
            scopes=options["scope"],
            lifetime=lifetime,
            now=now.timestamp(),
        )
        issuer.note_signed_until(signer.kid, now + dt.timedelta(seconds=lifetime))
        self.stderr.write(f"signed with key {signer.kid}, valid for {lifetime:g} s")
        self.stdout.write(token)
