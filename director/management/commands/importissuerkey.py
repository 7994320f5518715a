"""``python manage.py importissuerkey FILE.pem...``: a Pelican federation's issuer keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management.base import BaseCommand, CommandError, CommandParser

from director.federation import issuer, keystore
from director.trust import keys

BAD_FILE = 2  # exit status when a file is refused (nothing imported)


def read_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The issuer key in ``path``; KeySetError or OSError say why not."""
    with path.open("rb") as handle:
        data = handle.read(keys.MAX_KEY_FILE_BYTES + 1)
    return keys.load_issuer_key_file(data)


class Command(BaseCommand):
    help = (
        "Import the federation's existing issuer private keys (the PEM files of Pelican's "
        "IssuerKeysDirectory or IssuerKey: EC P-256, PKCS#8 or SEC1, unencrypted) so that "
        "tokens this director signs verify against the key set the federation already "
        "publishes. The key of the file whose name sorts first (Pelican's current key) "
        "signs from now on; the others are published beside it. All files are checked "
        "before any is stored: a file that is not an EC P-256 private key, or cannot be "
        "read, imports nothing (exit status 2). A key already stored changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE.pem")

    def handle(self, *args: Any, **options: Any) -> None:
        paths = [Path(name) for name in options["files"]]
        # Pelican signs with the key of the lowest file name in its keys directory.
        paths.sort(key=lambda path: path.name)
        found: list[ec.EllipticCurvePrivateKey] = []
        problems: list[str] = []
        for path in paths:
            try:
                found.append(read_key(path))
            except OSError as error:
                problems.append(f"{path}: cannot be read ({error.strerror or error})")
            except keys.KeySetError as error:
                problems.append(f"{path}: {error}")
        if problems:
            raise CommandError("nothing imported:\n  " + "\n  ".join(problems), returncode=BAD_FILE)
        try:
            result = issuer.import_keys(found)
        except keystore.KeyStoreError as error:
            raise CommandError(f"nothing imported: {error.problem}") from None
        for kid in result.present:
            self.stdout.write(f"key {kid} is already stored: unchanged")
        for kid in result.added:
            role = "signs from now on" if kid == result.signing else "published"
            self.stdout.write(f"imported key {kid}: {role}")
        for kid in result.withdrawn:
            self.stdout.write(
                f"removed key {kid}: it was waiting to sign, unknown to the federation"
            )
        if not result.added:
            self.stdout.write("nothing to import: every key is already stored")
