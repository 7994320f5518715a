"""``python manage.py rotatekey [--delay SECONDS]``: the federation issuer's next key."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from director.federation import issuer, keystore


class Command(BaseCommand):
    help = (
        "Add the federation issuer's next signing key. It is published in "
        "/.well-known/issuer.jwks at once and signs after --delay seconds (default "
        f"{issuer.JWKS_CACHE_SECONDS:g}: Pelican's servers cache the JWKS that long); the "
        "key it replaces stays published until the tokens it signed have expired. Keys no "
        "longer published are deleted. With an issuer key passphrase set, keys still "
        "stored in plaintext are encrypted (as encryptkeys does)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--delay",
            type=float,
            default=issuer.JWKS_CACHE_SECONDS,
            help="Seconds before the new key signs (0: at once, e.g. for a compromised key).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            new, deleted = issuer.rotate(options["delay"])
            encrypted = keystore.encrypt_stored().encrypted if keystore.passphrase() else []
        except keystore.KeyStoreError as error:
            raise CommandError(error.problem) from None
        self.stdout.write(f"new key {new.kid} signs from {new.activates_at.isoformat()}")
        for kid in deleted:
            self.stdout.write(f"deleted key {kid} (no longer published)")
        for kid in encrypted:
            self.stdout.write(f"encrypted key {kid} (stored in plaintext until now)")
