"""Ads refused with 400 (reference 1.6): malformed bodies, values that would break response
headers, and values that do not fit the registry; nothing is stored."""

from __future__ import annotations

import pytest
from helpers import caps, make_ad, namespace_ad
from registration_support import assert_error, assert_nothing_stored, post, without

from director.models import Server

# --- 400: malformed bodies -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "phrases"),
    [
        pytest.param(lambda ad: without(ad, "data-url"), ["'data-url'"], id="missing-data-url"),
        pytest.param(
            lambda ad: ad | {"data-url": "ftp://127.0.0.1/x"},
            ["'data-url'", "http://"],
            id="bad-data-url",
        ),
        pytest.param(lambda ad: ad | {"data-url": "http:///no-host"}, ["'data-url'"], id="no-host"),
        pytest.param(lambda ad: without(ad, "name"), ["'name'"], id="missing-name"),
        pytest.param(
            lambda ad: ad | {"namespaces": [namespace_ad("relative/path")]},
            ["namespaces", "path", "must start with '/'"],
            id="namespace-not-absolute",
        ),
        pytest.param(
            lambda ad: ad | {"coordinate": {"Lat": 123.0, "Long": 0.0}},
            ["'coordinate'"],
            id="latitude-out-of-range",
        ),
        pytest.param(
            lambda ad: ad | {"coordinate": {"Lat": "north", "Long": 0.0}},
            ["'coordinate.Lat'"],
            id="latitude-not-a-number",
        ),
        pytest.param(
            lambda ad: ad | {"namespaces": [namespace_ad("/dup"), namespace_ad("/dup/")]},
            ["namespaces", "duplicate", "/dup"],
            id="duplicate-namespaces",
        ),
        pytest.param(
            lambda ad: (
                ad | {"downtimes": [{"id": "d1", "startTime": 2_000_000, "endTime": 1_000_000}]}
            ),
            ["downtimes", "endTime", "startTime"],
            id="downtime-ends-before-start",
        ),
        pytest.param(lambda ad: ad | {"expiry": "tomorrow"}, ["'expiry'"], id="expiry-not-a-time"),
    ],
)
def test_a_malformed_ad_gets_400_naming_the_field_and_nothing_is_stored(
    live_director, change, phrases
):
    ad = change(make_ad("origin-a", "origin", "http://127.0.0.1:1"))

    answer = post(
        live_director,
        "registerOrigin",
        ad,
        secret=live_director.token_for("/origins/origin-a"),
    )

    assert_error(answer, 400, *phrases)
    assert_nothing_stored()


def test_a_bad_namespace_path_is_reported_with_its_full_field_location(live_director):
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1", [namespace_ad("relative")])

    answer = post(
        live_director, "registerOrigin", ad, secret=live_director.token_for("/origins/origin-a")
    )

    assert_error(answer, 400, "field 'namespaces.0.path'")


def test_a_body_that_is_not_json_gets_400_and_nothing_is_stored(live_director):
    answer = post(
        live_director,
        "registerOrigin",
        b'{"name": "origin-a", "data-url": ',
        secret=live_director.token_for("/origins/origin-a"),
    )

    assert_error(answer, 400)
    assert_nothing_stored()


def test_a_json_array_body_gets_400(live_director):
    answer = post(
        live_director, "registerOrigin", b"[]", secret=live_director.token_for("/origins/a")
    )

    assert_error(answer, 400, "'body'")
    assert_nothing_stored()


# --- 400: values that would break response headers or do not fit the registry ------------


PROTECTED = caps(Read=True)


def issuer_ad(**issuer: object) -> dict[str, object]:
    return make_ad(
        "origin-a",
        "origin",
        "http://127.0.0.1:1",
        namespaces=[namespace_ad("/ns", Caps=PROTECTED, **issuer)],
    )


@pytest.mark.parametrize(
    ("issuer", "field"),
    [
        (
            {"token-issuer": [{"issuer": "https://a.example\r\nX-Evil: 1", "base-paths": []}]},
            "namespaces.0.token-issuer.0.issuer",
        ),
        (
            {"token-issuer": [{"issuer": {"Scheme": "https", "Host": "a\r\nb"}}]},
            "namespaces.0.token-issuer.0.issuer",
        ),
        ({"token-issuer": [{"issuer": "https://日本.example"}]}, "namespaces.0.token-issuer"),
        (
            {"token-generation": [{"strategy": "OAuth2, x=1", "issuer": "https://a.example"}]},
            "namespaces.0.token-generation.0.strategy",
        ),
        (
            {"token-issuer": [{"issuer": "https://a.example", "base-paths": ["/a;b"]}]},
            "namespaces.0.token-issuer.0.base-paths.0",
        ),
    ],
)
def test_an_ad_whose_values_would_break_response_headers_is_refused(live_director, issuer, field):
    answer = live_director.advertise(issuer_ad(**issuer))

    assert answer.status_code == 400, answer.text
    assert field in answer.json()["msg"]
    assert not Server.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"data-url": "http://日本.example:8443"}, "data-url"),
        ({"version": "7" * 101}, "version"),
        ({"storageType": "posix\x00"}, "storageType"),
        ({"name": "a\x00b"}, "name"),
    ],
)
def test_values_that_do_not_fit_the_registry_are_a_400_not_a_500(live_director, fields, field):
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1")
    ad.update(fields)

    answer = live_director.advertise(ad)

    assert answer.status_code == 400, answer.text
    assert f"field '{field}'" in answer.json()["msg"]


def test_a_namespace_with_a_comma_is_refused(live_director):
    answer = live_director.advertise(
        make_ad("origin-a", "origin", "http://127.0.0.1:1", namespaces=[namespace_ad("/a,b")])
    )

    assert answer.status_code == 400
    assert "must not contain ," in answer.json()["msg"]


def test_an_unknown_downtime_class_is_refused(live_director):
    downtime = {"id": 1, "class": "WHENEVER", "startTime": 0, "endTime": -1}
    answer = live_director.advertise(
        make_ad("origin-a", "origin", "http://127.0.0.1:1", downtimes=[downtime])
    )

    assert answer.status_code == 400
    assert "downtimes.0.class" in answer.json()["msg"]
