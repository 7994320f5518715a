"""The federation issuer's private keys at rest (issue 24 item 6): with a passphrase they
are stored encrypted, and what they sign still verifies against the published JWKS;
plaintext keys keep working until ``encryptkeys`` (or ``rotatekey``) encrypts them; a
missing or wrong passphrase is a system check error, and a 503 with what to fix where a key
is used, while redirects go on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.test import override_settings
from django.utils import timezone
from pelican_peer import PelicanPeer

from director import checks
from director.federation import issuer, keystore
from director.federation.registry import decide
from director.models import IssuerKey, RegistrationStatus

PASSPHRASE = "correct horse battery staple, twice over"
OTHER = "a different passphrase of enough length"


def passphrase(value: str = PASSPHRASE, path: str = "") -> override_settings:
    return override_settings(
        DIRECTOR_ISSUER_KEY_PASSPHRASE=value, DIRECTOR_ISSUER_KEY_PASSPHRASE_FILE=path
    )


def assert_encrypted(row: IssuerKey) -> None:
    """Not a plaintext PEM: an encrypted PKCS#8 that does not load without a password."""
    assert row.private_pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert "-----BEGIN PRIVATE KEY-----" not in row.private_pem
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(row.private_pem.encode(), password=None)


def jwks_key(url: str, token: str) -> jwt.PyJWK:
    answer = requests.get(f"{url}/.well-known/issuer.jwks", timeout=10)
    assert answer.status_code == 200, answer.text
    return jwt.PyJWKSet.from_dict(answer.json())[jwt.get_unverified_header(token)["kid"]]


@pytest.fixture
def director(live_director) -> Iterator[str]:
    with override_settings(DIRECTOR_EXTERNAL_URL=live_director.url):
        yield live_director.url


def test_with_a_passphrase_keys_are_stored_encrypted_and_their_tokens_verify(director):
    cache = PelicanPeer(director, "cache-k")
    with passphrase():
        assert cache.register("/caches/cache-k").status_code == 201  # makes the first key
        decide(["/caches/cache-k"], RegistrationStatus.APPROVED, "admin")
        answer = requests.get(
            f"{director}/api/v1.0/director/getFedToken?host=cache-k&sType=Cache",
            headers={"Authorization": f"Bearer {cache.advertise_token(director)}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        token = answer.json()["access_token"]
        claims = jwt.decode(
            token, jwks_key(director, token), algorithms=["ES256"], options={"verify_aud": False}
        )
        call_command("rotatekey", "--delay", "0", stdout=None)

    assert claims["sub"] == "cache-k"
    rows = list(IssuerKey.objects.all())
    assert len(rows) == 2
    for row in rows:
        assert_encrypted(row)


def test_plaintext_keys_still_load_and_encryptkeys_encrypts_them(director, capsys):
    plain = issuer.create_key(timezone.now())  # no passphrase: stored as before
    assert plain.private_pem.startswith("-----BEGIN PRIVATE KEY-----")
    public = issuer.jwks()

    with passphrase():
        token = issuer.signer().mint(
            issuer=director, subject="s", audience=["a"], scopes=["x"], lifetime=60
        )
        call_command("encryptkeys")
        again = capsys.readouterr().out
        call_command("encryptkeys")
        row = IssuerKey.objects.get()
        reloaded = keystore.unseal(row.private_pem, row.kid)

    assert jwt.decode(token, jwks_key(director, token), algorithms=["ES256"], audience="a")
    assert again == f"encrypted key {plain.kid}\n"
    assert capsys.readouterr().out == (
        "every key is encrypted with the configured passphrase already\n"
    )
    assert_encrypted(row)
    assert {"keys": [issuer.keys.public_jwk(reloaded)]} == public  # the same key


def test_encryptkeys_moves_keys_to_a_new_passphrase_with_the_old_one(db, tmp_path: Path):
    old_file = tmp_path / "old-passphrase"
    old_file.write_text(PASSPHRASE + "\n")
    with passphrase("", path=str(old_file)):
        key = issuer.create_key(timezone.now())
    with passphrase(OTHER):
        with pytest.raises(CommandError, match=f"does not decrypt key {key.kid}"):
            call_command("encryptkeys")
        call_command("encryptkeys", "--old-passphrase-file", str(old_file), stdout=None)
        row = IssuerKey.objects.get()
        assert keystore.unseal(row.private_pem, row.kid).public_key() is not None
    with passphrase(), pytest.raises(keystore.KeyStoreError):
        keystore.unseal(row.private_pem, row.kid)


def test_a_wrong_or_missing_passphrase_is_reported_by_the_check(db, tmp_path: Path):
    with passphrase():
        key = issuer.create_key(timezone.now())
        assert checks.check_issuer_keys() == []
    unreadable = str(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.write_text("\n")

    def found(value: str = "", path: str = "") -> list[tuple[str, str]]:
        with passphrase(value, path):
            return [(message.id or "", message.msg) for message in checks.check_issuer_keys()]

    assert found(OTHER) == [
        ("director.E062", f"the configured passphrase does not decrypt key {key.kid}.")
    ]
    assert found() == [
        (
            "director.E062",
            f"key {key.kid} is encrypted and neither DIRECTOR_ISSUER_KEY_PASSPHRASE nor "
            "DIRECTOR_ISSUER_KEY_PASSPHRASE_FILE is set.",
        )
    ]
    assert [code for code, _ in found(PASSPHRASE, str(empty))] == ["director.E061"]
    assert found(path=unreadable)[0][0] == "director.E061"
    assert found(path=str(empty)) == [
        ("director.E061", f"DIRECTOR_ISSUER_KEY_PASSPHRASE_FILE={str(empty)!r} is empty.")
    ]
    assert [code for code, _ in found("short")] == ["director.W061", "director.E062"]
    with passphrase(OTHER), pytest.raises(SystemCheckError, match="director.E062"):
        call_command("check")


def test_a_wrong_passphrase_refuses_signing_with_503_and_redirects_go_on(
    director, live_director, file_servers
):
    with passphrase():
        key = issuer.create_key(timezone.now())
    origin = file_servers({"/test/file": b"x"})
    live_director.register("origin-w", "origin", origin.url)  # a registration token's way
    peer = PelicanPeer(director, "site-w")

    with passphrase(OTHER):
        challenge = requests.post(
            f"{director}/api/v1.0/registry",
            json={"client_nonce": "ab" * 32, "pubkey": peer.jwks()},
            timeout=10,
        )
        redirect = live_director.get("/api/v1.0/director/origin/test/file")

    assert challenge.status_code == 503
    assert challenge.json() == {
        "status": "error",
        "msg": "The federation issuer's signing keys are unusable: the configured "
        f"passphrase does not decrypt key {key.kid}",
    }
    assert redirect.status_code == 307
    assert redirect.headers["Location"] == f"{origin.url}/test/file"
    with passphrase():  # the right one: signing again
        assert peer.challenge()[1]["server_signature"]
