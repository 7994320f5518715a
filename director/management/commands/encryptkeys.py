"""``python manage.py encryptkeys [--old-passphrase-file FILE]``: the federation issuer's
stored keys encrypted with the configured passphrase."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from director.federation import keystore


class Command(BaseCommand):
    help = (
        "Encrypt every federation issuer key stored in plaintext with the passphrase of "
        f"{keystore.SETTING} or {keystore.FILE_SETTING}; with --old-passphrase-file, also "
        "re-encrypt the keys encrypted with that former passphrase. All keys or none. "
        "New keys are stored encrypted without it; rotatekey runs it too."
    )
    # It fixes what the key check (director.E062) reports: it must run despite it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--old-passphrase-file",
            metavar="FILE",
            help="The former passphrase (a file, its final line break ignored).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        old = None
        if options["old_passphrase_file"]:
            path = Path(options["old_passphrase_file"])
            try:
                old = path.read_text(encoding="utf-8").rstrip("\r\n").encode()
            except (OSError, UnicodeError) as error:
                raise CommandError(f"{path} cannot be read ({error})") from None
        try:
            done = keystore.encrypt_stored(old)
        except keystore.KeyStoreError as error:
            raise CommandError(error.problem) from None
        for kid in done.encrypted:
            self.stdout.write(f"encrypted key {kid}")
        for kid in done.rekeyed:
            self.stdout.write(f"re-encrypted key {kid} (with the new passphrase)")
        if not done.encrypted and not done.rekeyed:
            self.stdout.write("every key is encrypted with the configured passphrase already")
