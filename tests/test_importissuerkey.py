"""``manage.py importissuerkey`` (issue 19 item 4): a Pelican federation's issuer keys,
PEM files as Pelican writes them (PKCS#8, what it generates; SEC1, what ``openssl
ecparam -genkey`` writes), stored with the ``kid`` Pelican gives them (computed here by
``pelican_peer``, which imports nothing of the director) and signing at once.

Each refusal (a public key, an RSA key, another curve, an encrypted key, garbage, an
unreadable path, one bad file among good ones) is exit status 2 with nothing imported,
beside the legitimate import that still works; a second import changes nothing;
``rotatekey`` works on top.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from pelican_peer import public_jwk
from processes import manage_env, run_manage, run_manage_ok, sqlite_url

from director.federation import issuer, keystore
from director.models import IssuerKey

pytestmark = pytest.mark.django_db

PASSPHRASE = "correct horse battery staple, twice over"


def pkcs8(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    """``-----BEGIN PRIVATE KEY-----``: how Pelican writes the keys it generates."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def sec1(key: ec.EllipticCurvePrivateKey) -> bytes:
    """``openssl ecparam -name prime256v1 -genkey``: EC PARAMETERS, then EC PRIVATE KEY."""
    parameters = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    return parameters + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def write(directory: Path, name: str, data: bytes) -> str:
    path = directory / name
    path.write_bytes(data)
    return str(path)


def imported(*paths: str) -> str:
    out = _Out()
    call_command("importissuerkey", *paths, stdout=out)
    return out.text


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def refused(*paths: str) -> str:
    with pytest.raises(CommandError) as caught:
        call_command("importissuerkey", *paths)
    assert caught.value.returncode == 2
    return str(caught.value)


@pytest.mark.parametrize("form", [pkcs8, sec1], ids=["pkcs8", "sec1"])
def test_a_pelican_key_file_is_imported_with_pelicans_kid_and_signs_at_once(tmp_path, form):
    before = issuer.signer().kid  # this director's own first key
    key = p256()
    kid = public_jwk(key)["kid"]  # Pelican's kid: the RFC 7638 thumbprint

    printed = imported(write(tmp_path, "pelican_generated_1.pem", form(key)))

    assert f"imported key {kid}: signs from now on" in printed
    assert issuer.signer().kid == kid
    assert issuer.signer().key.private_numbers() == key.private_numbers()
    published = {jwk["kid"]: jwk for jwk in issuer.jwks()["keys"]}
    assert published[kid] == public_jwk(key)
    assert before in published  # what the old key signed still verifies


def test_importing_a_key_already_stored_changes_nothing(tmp_path):
    path = write(tmp_path, "issuer.pem", pkcs8(key := p256()))
    imported(path)
    rows = list(IssuerKey.objects.values_list("kid", "private_pem", "activates_at"))

    printed = imported(path)  # exit status 0: no CommandError

    assert f"key {public_jwk(key)['kid']} is already stored: unchanged" in printed
    assert "nothing to import" in printed
    assert list(IssuerKey.objects.values_list("kid", "private_pem", "activates_at")) == rows


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            p256()
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "holds a public key or certificate, not a private key",
        ),
        (pkcs8(rsa.generate_private_key(65537, 2048)), "holds an RSA key"),
        (
            rsa.generate_private_key(65537, 2048).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            ),
            "holds an RSA key",
        ),
        (pkcs8(ec.generate_private_key(ec.SECP384R1())), "holds an EC key on secp384r1"),
        (
            p256().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            ),
            "holds an encrypted private key",
        ),
        (b"not a key at all\n", "holds no PEM block"),
        (
            b"-----BEGIN PRIVATE KEY-----\nZ2FyYmFnZQ==\n-----END PRIVATE KEY-----\n",
            "holds a private key block that is not a valid key",
        ),
        (pkcs8(p256()) + pkcs8(p256()), "holds 2 private keys"),
    ],
    ids=["public", "rsa-pkcs8", "rsa-pkcs1", "p384", "encrypted", "garbage", "bad-der", "two"],
)
def test_a_file_that_is_not_one_ec_p256_private_key_is_refused(tmp_path, content, reason):
    stored = set(IssuerKey.objects.values_list("kid", flat=True))
    path = write(tmp_path, "bad.pem", content)

    message = refused(path)

    assert f"{path}: {reason}" in message
    assert message.startswith("nothing imported")
    assert set(IssuerKey.objects.values_list("kid", flat=True)) == stored
    # The legitimate import still works.
    imported(write(tmp_path, "good.pem", pkcs8(p256())))


def test_an_unreadable_path_is_refused(tmp_path):
    missing = str(tmp_path / "missing.pem")

    assert f"{missing}: cannot be read (No such file or directory)" in refused(missing)
    assert f"{tmp_path}: cannot be read" in refused(str(tmp_path))  # a directory
    assert not IssuerKey.objects.exists()


def test_one_bad_file_among_good_ones_imports_nothing(tmp_path):
    good = write(tmp_path, "a.pem", pkcs8(p256()))
    bad = write(
        tmp_path,
        "b.pem",
        p256()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    also_good = write(tmp_path, "c.pem", sec1(p256()))

    message = refused(good, bad, also_good)

    assert f"{bad}: holds a public key" in message
    assert good not in message and also_good not in message
    assert not IssuerKey.objects.exists()


def test_the_key_of_the_first_file_name_signs_as_in_pelican(tmp_path):
    first, second = p256(), p256()
    paths = [
        write(tmp_path, "pelican_generated_2.pem", pkcs8(second)),
        write(tmp_path, "pelican_generated_1.pem", pkcs8(first)),
    ]

    printed = imported(*paths)

    assert f"imported key {public_jwk(first)['kid']}: signs from now on" in printed
    assert f"imported key {public_jwk(second)['kid']}: published" in printed
    assert issuer.signer().kid == public_jwk(first)["kid"]
    assert {public_jwk(first)["kid"], public_jwk(second)["kid"]} <= {
        jwk["kid"] for jwk in issuer.jwks()["keys"]
    }


def test_a_key_waiting_to_sign_is_withdrawn_and_rotatekey_works_on_top(tmp_path):
    waiting, _ = issuer.rotate(900)  # would sign in 15 minutes: unknown to the federation
    key = p256()

    printed = imported(write(tmp_path, "issuer.pem", pkcs8(key)))

    assert f"removed key {waiting.kid}" in printed
    assert waiting.kid not in {jwk["kid"] for jwk in issuer.jwks()["keys"]}
    kid = public_jwk(key)["kid"]
    call_command("rotatekey", "--delay", "900", stdout=_Out())
    assert issuer.signer().kid == kid  # the imported key signs until the next one's time
    call_command("rotatekey", "--delay", "0", stdout=_Out())
    assert issuer.signer().kid != kid
    assert kid in {jwk["kid"] for jwk in issuer.jwks()["keys"]}  # its tokens still verify


def test_an_imported_key_is_sealed_as_every_key_is(tmp_path):
    key = p256()
    with override_settings(DIRECTOR_ISSUER_KEY_PASSPHRASE=PASSPHRASE):
        imported(write(tmp_path, "issuer.pem", sec1(key)))
        row = IssuerKey.objects.get(kid=public_jwk(key)["kid"])
        assert keystore.is_encrypted(row.private_pem)
        assert issuer.signer().key.private_numbers() == key.private_numbers()


def test_the_exit_status_through_manage_py(tmp_path):
    env = manage_env(sqlite_url(tmp_path))
    run_manage_ok("migrate", "--noinput", "-v0", env=env)
    good = write(tmp_path, "issuer.pem", pkcs8(key := p256()))
    public = write(
        tmp_path,
        "public.pem",
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )

    bad = run_manage("importissuerkey", good, public, env=env)
    first = run_manage("importissuerkey", good, env=env)
    again = run_manage("importissuerkey", good, env=env)

    assert bad.returncode == 2, bad.stderr
    assert f"{public}: holds a public key or certificate, not a private key" in bad.stderr
    assert first.returncode == 0, first.stderr
    assert f"imported key {public_jwk(key)['kid']}: signs from now on" in first.stdout
    assert again.returncode == 0, again.stderr
    assert "already stored: unchanged" in again.stdout
