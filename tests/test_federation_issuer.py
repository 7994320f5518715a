"""The federation issuer in process: which keys are published when (rotation on a fixed
clock), the health tests' tokens and reports verified with PyJWT against the served
JWKS, and storage types that cannot self-test."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest
import requests
from django.utils import timezone

from director.federation import issuer
from director.models import HealthStatus, IssuerKey, Server
from director.ops.healthtests import HealthTester
from director.trust import keys

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
KEEP = dt.timedelta(seconds=issuer.longest_automatic_lifetime() + 60)


def key(activates_at: dt.datetime, signed_until: dt.datetime | None = None) -> IssuerKey:
    private = keys.generate_private_key()
    return IssuerKey(
        kid=keys.public_jwk(private)["kid"],
        private_pem=keys.private_key_pem(private),
        activates_at=activates_at,
        signed_until=signed_until,
    )


def test_a_replaced_key_stays_published_while_its_tokens_may_be_valid():
    old = key(T0)
    new = key(T0 + dt.timedelta(hours=1))
    rows = [old, new]

    assert issuer.published_rows(rows, T0) == [old, new]  # new: waiting to sign
    assert issuer.published_rows(rows, new.activates_at + KEEP - dt.timedelta(seconds=1)) == [
        old,
        new,
    ]
    assert issuer.published_rows(rows, new.activates_at + KEEP) == [new]


def test_a_key_that_signed_a_long_token_stays_until_it_expires():
    expiry = T0 + dt.timedelta(days=2)
    old = key(T0, signed_until=expiry)
    new = key(T0 + dt.timedelta(hours=1))

    assert old in issuer.published_rows([old, new], expiry + dt.timedelta(seconds=59))
    assert old not in issuer.published_rows([old, new], expiry + dt.timedelta(seconds=61))


@pytest.mark.django_db
def test_a_delayed_rotation_publishes_the_next_key_before_it_signs():
    first = issuer.signer()

    new, deleted = issuer.rotate(900)

    assert deleted == []
    assert issuer.signer().kid == first.kid
    assert {jwk["kid"] for jwk in issuer.jwks()["keys"]} == {first.kid, new.kid}
    IssuerKey.objects.filter(kid=new.kid).update(activates_at=timezone.now())
    issuer.forget()
    assert issuer.signer().kid == new.kid


def verified(live_director, token: str, audience: str) -> dict[str, object]:
    served = requests.get(f"{live_director.url}/.well-known/issuer.jwks", timeout=10).json()
    found = jwt.PyJWKSet.from_dict(served)[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(token, key=found, algorithms=["ES256"], audience=audience)


def test_the_origin_test_and_the_report_carry_federation_tokens(live_director, file_servers):
    origin = file_servers(name="origin-t")
    live_director.register("origin-t", "origin", origin.url)
    tester = HealthTester("test-director", live_director.url)
    try:
        tester.tick()
        tester._pool.join(timeout=10)
        tester.tick()
    finally:
        tester.stop()

    put = next(seen for seen in origin.seen_headers if seen["method"] == "PUT")
    transfer = verified(live_director, put["Authorization"].removeprefix("Bearer "), origin.url)
    issuer_name = live_director.url.replace("http://", "https://")  # as discovery gives it
    assert transfer["iss"] == issuer_name
    assert transfer["sub"] == issuer_name
    assert transfer["aud"] == [origin.url, origin.url]
    assert transfer["scope"] == "storage.read:/ storage.modify:/"
    assert transfer["exp"] - transfer["iat"] == 60
    [(body, authorization)] = origin.reports
    assert body["status"] == "ok"
    assert str(body["message"]).startswith("Director test cycle succeeded at ")
    assert isinstance(body["timestamp"], int)
    report = verified(live_director, authorization.removeprefix("Bearer "), origin.url)
    assert (report["sub"], report["aud"], report["scope"]) == (
        "director",
        [origin.url],
        "pelican.director_test_report",
    )
    assert Server.objects.get(name="origin-t").health_status == HealthStatus.OK


def test_a_failed_test_is_reported_as_an_error(live_director, file_servers):
    origin = file_servers(name="origin-f")
    origin.behaviour.missing = True
    live_director.register("origin-f", "origin", origin.url)
    tester = HealthTester("test-director", live_director.url)
    try:
        tester.tick()
        tester._pool.join(timeout=10)
    finally:
        tester.stop()

    [(body, _)] = origin.reports
    assert body["status"] == "error"
    assert str(body["message"]).startswith(
        f"Director file transfer test cycle failed for server: {origin.url} GET "
    )


@pytest.mark.parametrize(
    ("storage", "tested"), [("s3", False), ("https", False), ("posixv2", True)]
)
def test_storage_that_cannot_self_test_is_not_tested(live_director, storage, tested):
    live_director.register("origin-s", "origin", "http://127.0.0.1:9", storageType=storage)

    row = Server.objects.get(name="origin-s")

    assert row.director_test_disabled is not tested
    assert (row.health_status == HealthStatus.DISABLED) is not tested
