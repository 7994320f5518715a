from __future__ import annotations

import base64
import json

import pytest

from director.wire.tokens import EXPIRED_TOKEN_CHALLENGE, bearer_token, client_token, token_expired

NOW = 1_700_000_000


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(**claims: object) -> str:
    """An unsigned compact JWT (alg none, empty signature) with the given claims."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    return f"{header}.{payload}."


def test_the_jwt_builder_makes_a_three_part_unpadded_token():
    token = jwt(sub="u", exp=NOW)
    assert token.count(".") == 2
    assert "=" not in token


def test_a_token_expiring_well_after_now_is_accepted():
    assert token_expired(jwt(iat=NOW - 60, exp=NOW + 3600), NOW) is False


def test_a_token_that_expired_in_the_past_is_refused():
    assert token_expired(jwt(iat=NOW - 3600, exp=NOW - 1), NOW) is True


def test_grace_is_ten_seconds_for_a_long_lived_token():
    assert token_expired(jwt(iat=NOW - 3600, exp=NOW + 10), NOW) is True
    assert token_expired(jwt(iat=NOW - 3600, exp=NOW + 11), NOW) is False


def test_grace_is_half_the_lifetime_for_a_short_lived_token():
    # Lifetime 8 s, grace 4 s: exp == now + grace is expired.
    assert token_expired(jwt(iat=NOW - 4, exp=NOW + 4), NOW) is True
    # Lifetime 9 s, grace 4.5 s: exp is past now + grace.
    assert token_expired(jwt(iat=NOW - 4, exp=NOW + 5), NOW) is False
    # Lifetime 12 s, grace 6 s (not 10): 7 s left is still fine.
    assert token_expired(jwt(iat=NOW - 5, exp=NOW + 7), NOW) is False


def test_a_zero_lifetime_counts_as_expired():
    assert token_expired(jwt(iat=NOW + 1000, exp=NOW + 1000), NOW) is True


def test_a_negative_lifetime_counts_as_expired():
    assert token_expired(jwt(iat=NOW + 2000, exp=NOW + 1000), NOW) is True


def test_without_iat_the_grace_is_ten_seconds():
    assert token_expired(jwt(exp=NOW + 10), NOW) is True
    assert token_expired(jwt(exp=NOW + 11), NOW) is False


def test_fractional_exp_is_compared_exactly():
    assert token_expired(jwt(iat=NOW - 3600, exp=NOW + 10.5), NOW) is False
    assert token_expired(jwt(iat=NOW - 3600, exp=NOW + 9.5), NOW) is True


def test_a_jwt_without_exp_passes():
    assert token_expired(jwt(sub="someone", iat=NOW - 10), NOW) is False


def test_a_jwt_with_a_non_numeric_exp_passes():
    assert token_expired(jwt(iat=NOW - 10, exp="soon"), NOW) is False


@pytest.mark.parametrize(
    "token",
    [
        "",
        "opaque-scitoken-string",
        "a.b",
        "a.b.c.d",
        "header.!!!not-base64!!!.sig",
        f"h.{b64url(b'not json')}.s",
        f"h.{b64url(b'[1, 2, 3]')}.s",
    ],
)
def test_a_token_that_is_not_a_jwt_passes(token):
    assert token_expired(token, NOW) is False


def test_the_signature_is_not_checked():
    token = jwt(iat=NOW - 3600, exp=NOW - 1) + "bogus-signature"
    assert token_expired(token, NOW) is True


def test_client_token_takes_the_authorization_bearer_header():
    assert client_token("Bearer header-token", "") == "header-token"


def test_client_token_prefers_the_header_over_the_authz_query():
    assert client_token("Bearer header-token", "query-token") == "header-token"


def test_client_token_falls_back_to_the_authz_query_and_strips_bearer():
    assert client_token("", "Bearer query-token") == "query-token"
    assert client_token("", "query-token") == "query-token"


def test_client_token_is_empty_without_either():
    assert client_token("", "") == ""


def test_expired_token_challenge_is_the_pelican_www_authenticate_value():
    assert EXPIRED_TOKEN_CHALLENGE == (
        'Bearer error="invalid_token", error_description="token has expired"'
    )


@pytest.mark.parametrize(
    ("authorization", "token"),
    [
        ("Bearer abc", "abc"),
        ("Bearer  abc \t", "abc"),
        ("Bearer ", ""),
        ("Bearer    ", ""),
        ("bearer abc", ""),
        ("Basic abc", ""),
        ("abc", ""),
        ("", ""),
    ],
)
def test_bearer_token_is_the_stripped_token_of_a_bearer_header_or_nothing(
    authorization: str, token: str
) -> None:
    assert bearer_token(authorization) == token
