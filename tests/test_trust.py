"""The plain trust core (``director.trust``): thumbprints, key sets, WLCG tokens and their
verification, prefix rules and the challenge, without Django or a network."""

from __future__ import annotations

import time

import jwt
import pytest

from director.trust import keys, tokens
from director.trust import registry as protocol

# RFC 7638 section 3.1: the example RSA key and its thumbprint.
RFC7638_KEY = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
        "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0"
        "_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWh"
        "AI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
}


def test_the_thumbprint_is_rfc_7638s():
    assert keys.thumbprint(RFC7638_KEY) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_a_public_jwk_has_pelicans_members_and_its_thumbprint_as_kid():
    jwk = keys.public_jwk(keys.generate_private_key())

    assert list(jwk) == ["alg", "crv", "kid", "kty", "x", "y"]
    assert (jwk["alg"], jwk["crv"], jwk["kty"]) == ("ES256", "P-256", "EC")
    assert jwk["kid"] == keys.thumbprint(jwk) and len(jwk["kid"]) == 43


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({}, "a key set must be"),
        ({"keys": []}, "a key set must be"),
        ({"keys": ["x"]}, "a key must be a JSON object"),
        ({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}, "not a usable key"),
        ({"keys": [{"kty": "oct", "k": "AA", "alg": "HS256"}]}, "is not one of"),
        ("not json", "not JSON"),
    ],
)
def test_a_bad_key_set_is_refused_with_the_reason(value, problem):
    with pytest.raises(keys.KeySetError, match=problem):
        keys.parse_key_set(value)


def test_private_keys_and_duplicate_kids_are_refused():
    private = keys.generate_private_key()
    public = keys.public_jwk(private)
    leaked = jwt.algorithms.ECAlgorithm.to_jwk(private, as_dict=True)

    with pytest.raises(keys.KeySetError, match="public keys only"):
        keys.parse_key_set({"keys": [leaked]})
    with pytest.raises(keys.KeySetError, match="two keys"):
        keys.parse_key_set({"keys": [public, public]})


def test_a_token_verifies_with_its_kid_and_not_with_another_key():
    private = keys.generate_private_key()
    key_set = keys.parse_key_set({"keys": [keys.public_jwk(private)]})
    other = keys.parse_key_set({"keys": [keys.public_jwk(keys.generate_private_key())]})
    token = tokens.mint(
        private,
        key_set.first()["kid"],
        issuer="https://fed",
        subject="s",
        audience=["a"],
        scopes=[tokens.ADVERTISE],
        lifetime=60,
    )

    claims = tokens.verify(token, key_set.keys)

    assert claims["aud"] == ["a"] and tokens.has_scope(claims, tokens.ADVERTISE)
    assert jwt.get_unverified_header(token) == {
        "alg": "ES256",
        "kid": key_set.first()["kid"],
        "typ": "JWT",
    }
    with pytest.raises(tokens.TokenRejected, match="no key with kid"):
        tokens.verify(token, other.keys)


@pytest.mark.parametrize(("age", "valid"), [(100, True), (130, False)])
def test_the_expiry_has_a_60_second_leeway(age, valid):
    private = keys.generate_private_key()
    key_set = keys.parse_key_set({"keys": [keys.public_jwk(private)]})
    token = tokens.mint(
        private,
        key_set.first()["kid"],
        issuer="i",
        subject="s",
        audience=[],
        scopes=[],
        lifetime=60,
        now=time.time() - age,
    )

    if valid:
        assert "scope" not in tokens.verify(token, key_set.keys)
    else:
        with pytest.raises(tokens.TokenRejected, match='"exp" not satisfied'):
            tokens.verify(token, key_set.keys)


@pytest.mark.parametrize(
    ("prefix", "result"),
    [
        ("/ligo/data/", "/ligo/data"),
        ("/origins/host:8443", "/origins/host:8443"),
        ("", "Path prefix may not be empty"),
        ("ligo", "Path prefix must be absolute - relative paths are not allowed"),
        ("/", "Cannot register the prefix '/'"),
        ("/api/x", "Cannot register a prefix starting with '/api'"),
        ("/pelican/x", "Cannot register a prefix starting with '/pelican'"),
        ("/a/../b", "Path component cannot be '..'"),
        ("/a/.hidden", "Path component cannot begin with a '.'"),
        ("/origins/", "Origin prefix is missing hostname"),
        ("/caches/caches/x", "Duplicated cache prefix /caches/caches/x"),
    ],
)
def test_prefixes_are_validated_as_pelicans_registry_does(prefix, result):
    if result.startswith("/"):
        assert protocol.validate_prefix(prefix) == result
    else:
        with pytest.raises(protocol.PrefixError, match=result.replace("(", r"\(")):
            protocol.validate_prefix(prefix)


def test_the_challenge_binds_both_nonces_to_the_registrys_key():
    registry_key = keys.generate_private_key()
    public = [jwt.PyJWK(keys.public_jwk(registry_key))]
    client_nonce = protocol.new_nonce()
    answer = protocol.challenge(registry_key, client_nonce)
    echoed = (answer.server_payload, answer.server_signature)

    assert len(client_nonce) == 64
    assert protocol.registry_signed(public, client_nonce, answer.server_nonce, *echoed)
    assert not protocol.registry_signed(public, client_nonce, "0" * 64, *echoed)
    assert not protocol.registry_signed(public, client_nonce, answer.server_nonce, "00", echoed[1])
