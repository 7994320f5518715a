"""POST /api/v1.0/director/registerOrigin and /registerCache over real HTTP (reference 1.6)."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
import requests
from django.utils import timezone
from helpers import (
    CACHE_UA,
    ORIGIN_UA,
    caps,
    configure_director,
    create_server,
    make_ad,
    namespace_ad,
)

from director import registry
from director.models import Downtime, Namespace, RegistrationToken, Server, Source

SUCCESS = {"status": "success", "msg": "Successful registration"}
GO_ISSUER = {
    "Scheme": "https",
    "Opaque": "",
    "User": None,
    "Host": "issuer.example:8443",
    "Path": "",
    "RawPath": "",
    "OmitHost": False,
    "ForceQuery": False,
    "RawQuery": "",
    "Fragment": "",
    "RawFragment": "",
}


def post(
    live_director: Any,
    endpoint: str,
    body: Any,
    *,
    secret: str | None,
    user_agent: str = ORIGIN_UA,
) -> requests.Response:
    """POST a body (a dict as JSON, or raw bytes) with an optional bearer secret."""
    headers = {"User-Agent": user_agent, "Content-Type": "application/json"}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(
        f"{live_director.url}/api/v1.0/director/{endpoint}", data=data, headers=headers, timeout=10
    )


def assert_error(answer: requests.Response, status: int, *phrases: str) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"status", "msg"}
    assert body["status"] == "error"
    for phrase in phrases:
        assert phrase in body["msg"]
    return body["msg"]


def assert_nothing_stored() -> None:
    assert Server.objects.count() == 0
    assert Namespace.objects.count() == 0
    assert Downtime.objects.count() == 0


def server_state(name: str) -> dict[str, Any]:
    server = Server.objects.get(name=name)
    return {
        "pk": server.pk,
        "data_url": server.data_url,
        "registry_prefix": server.registry_prefix,
        "expires_at": server.expires_at,
        "source": server.source,
        "namespaces": sorted(server.namespaces.values_list("path", flat=True)),
    }


# --- success -------------------------------------------------------------------------------


def test_an_origin_ad_with_a_live_token_is_stored_with_its_namespaces(live_director):
    ad = make_ad(
        "origin-a",
        "origin",
        "http://127.0.0.1:8443/",
        namespaces=[namespace_ad("/data/"), namespace_ad("/other", Caps=caps(Read=True))],
        capabilities=caps(PublicRead=True, Read=True, Write=True),
        coordinate={"Lat": 43.07, "Long": -89.4, "AccuracyRadius": 0, "Source": "declared"},
        **{"broker-url": "http://broker.example/api"},
    )

    answer = live_director.advertise(ad)

    assert answer.status_code == 200
    assert answer.json() == SUCCESS
    assert answer.headers["Server"] == "pelican/0.1.0"
    server = Server.objects.get(name="origin-a")
    assert (server.kind, server.source, server.registry_prefix) == (
        "origin",
        Source.ADVERTISED,
        "/origins/origin-a",
    )
    assert server.data_url == "http://127.0.0.1:8443"
    assert server.broker_url == "http://broker.example/api"
    assert server.capability_names() == ["PublicReads", "Reads", "Writes"]
    assert (server.latitude, server.longitude) == (43.07, -89.4)
    assert (server.status, server.version) == ("ok", "7.20.0")
    namespaces = {ns.path: ns.capability_names() for ns in server.namespaces.all()}
    assert namespaces == {"/data": ["PublicReads", "Reads"], "/other": ["Reads"]}


def test_a_cache_ad_is_accepted_at_register_cache(live_director):
    answer = live_director.advertise(make_ad("cache-a", "cache", "http://127.0.0.1:8444"))

    assert answer.status_code == 200
    assert answer.json() == SUCCESS
    assert Server.objects.get(name="cache-a").kind == "cache"


def test_the_token_records_when_it_was_last_used(live_director):
    live_director.token_for("/origins/origin-a")
    token = RegistrationToken.objects.get(registry_prefix="/origins/origin-a")
    assert token.last_used_at is None
    before = timezone.now()

    live_director.register("origin-a", "origin", "http://127.0.0.1:8443")

    token.refresh_from_db()
    assert before <= token.last_used_at <= timezone.now()


# --- 403: who may advertise ----------------------------------------------------------------


def test_an_ad_without_authorization_is_refused_and_nothing_stored(live_director):
    answer = live_director.advertise(make_ad("origin-a", "origin", "http://127.0.0.1:1"), token="")

    assert_error(answer, 403, "Authorization")
    assert_nothing_stored()


@pytest.mark.parametrize(
    ("body", "user_agent"),
    [
        pytest.param(b'{"name": ', ORIGIN_UA, id="malformed-body"),
        pytest.param(
            make_ad("origin-a", "origin", "http://127.0.0.1:1"),
            "pelican-origin/7.0.0",
            id="old-user-agent",
        ),
    ],
)
def test_a_missing_authorization_is_refused_before_anything_else_is_checked(
    live_director, body, user_agent
):
    answer = post(live_director, "registerOrigin", body, secret=None, user_agent=user_agent)

    assert_error(answer, 403, "Authorization")
    assert_nothing_stored()


def test_an_authorization_header_that_is_not_bearer_is_refused(live_director):
    secret = live_director.token_for("/origins/origin-a")
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1")

    answer = live_director.advertise(ad, headers={"Authorization": f"Basic {secret}"})

    assert_error(answer, 403, "Bearer")
    assert_nothing_stored()


def test_a_wrong_token_is_refused(live_director):
    live_director.token_for("/origins/origin-a")
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1")

    answer = live_director.advertise(ad, token="not-the-secret")

    # Refused before the body is even read: the token is no live token at all.
    assert_error(answer, 403, "not a live registration token")
    assert_nothing_stored()


def test_a_token_for_another_prefix_is_refused(live_director):
    other = live_director.token_for("/origins/origin-b")
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1")

    answer = live_director.advertise(ad, token=other)

    assert_error(answer, 403, "/origins/origin-a")
    assert_nothing_stored()
    token = RegistrationToken.objects.get(registry_prefix="/origins/origin-b")
    assert token.last_used_at is None


def test_a_revoked_token_is_refused(live_director):
    token, secret = RegistrationToken.issue("/origins/origin-a")
    token.revoked_at = timezone.now()
    token.save()
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1")

    answer = live_director.advertise(ad, token=secret)

    assert_error(answer, 403, "not a live registration token")
    assert_nothing_stored()


def test_a_cache_prefix_at_register_origin_is_refused(live_director):
    ad = make_ad("cache-a", "cache", "http://127.0.0.1:1")
    secret = live_director.token_for("/caches/cache-a")

    answer = post(live_director, "registerOrigin", ad, secret=secret)

    assert_error(answer, 403, "/caches/cache-a", "cache")
    assert_nothing_stored()


def test_an_origin_prefix_at_register_cache_is_refused(live_director):
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1")
    secret = live_director.token_for("/origins/origin-a")

    answer = post(live_director, "registerCache", ad, secret=secret, user_agent=CACHE_UA)

    assert_error(answer, 403)
    assert answer.json()["msg"] == (
        'Cache advertisement rejected: registry prefix "/origins/origin-a" is not a valid '
        "Cache registration prefix"
    )
    assert_nothing_stored()


def test_a_registry_prefix_of_the_wrong_shape_is_refused(live_director):
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1", **{"registry-prefix": "/origins"})

    answer = post(live_director, "registerOrigin", ad, secret=live_director.token_for("/origins/x"))

    assert_error(answer, 403, 'registry prefix "/origins" is not a valid Origin')
    assert_nothing_stored()


def test_an_ad_without_a_registry_prefix_is_refused_with_pelicans_message(live_director):
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1")
    del ad["registry-prefix"]

    answer = post(live_director, "registerOrigin", ad, secret=live_director.token_for("/origins/x"))

    assert_error(answer, 403)
    assert answer.json()["msg"] == (
        "Origin advertisement rejected: no registry prefix present in the ad. Ensure the "
        "server runs a supported Pelican version and is registered at the federation registry"
    )
    assert_nothing_stored()


def test_a_name_registered_under_one_prefix_cannot_be_taken_by_another_prefix(live_director):
    live_director.register("shared", "origin", "http://127.0.0.1:1111")
    before = server_state("shared")
    thief = make_ad(
        "shared",
        "origin",
        "http://127.0.0.1:2222",
        namespaces=[namespace_ad("/stolen")],
        **{"registry-prefix": "/origins/thief"},
    )

    answer = live_director.advertise(thief)

    assert_error(answer, 403, "/origins/shared")
    assert server_state("shared") == before
    assert before["namespaces"] == ["/test"]


def test_an_admin_defined_server_cannot_be_replaced_by_an_ad(live_director):
    create_server("defined", "origin", "http://127.0.0.1:1111", {"/kept": {}})

    answer = live_director.advertise(
        make_ad("defined", "origin", "http://127.0.0.1:2222", [namespace_ad("/new")])
    )

    assert_error(answer, 403, "admin")
    server = Server.objects.get(name="defined")
    assert (server.source, server.data_url, server.expires_at) == (
        Source.ADMIN,
        "http://127.0.0.1:1111",
        None,
    )
    assert list(server.namespaces.values_list("path", flat=True)) == ["/kept"]


# --- 403: which namespaces a token may advertise ------------------------------------------


def test_a_token_limited_to_namespaces_cannot_claim_another(live_director):
    _, secret = RegistrationToken.issue("/origins/origin-a", namespaces=["/mine"])
    ad = make_ad(
        "origin-a",
        "origin",
        "http://127.0.0.1:1",
        namespaces=[namespace_ad("/mine/data"), namespace_ad("/theirs")],
    )

    refused = live_director.advertise(ad, token=secret)
    ad["namespaces"] = [namespace_ad("/mine"), namespace_ad("/mine/data")]
    accepted = live_director.advertise(ad, token=secret)

    assert refused.status_code == 403
    assert "/theirs" in refused.json()["msg"] and "/mine/data" not in refused.json()["msg"]
    assert accepted.status_code == 200, accepted.text
    assert sorted(Namespace.objects.values_list("path", flat=True)) == ["/mine", "/mine/data"]


def test_a_limited_cache_token_still_serves_the_pelican_paths(live_director):
    _, secret = RegistrationToken.issue("/caches/cache-a", namespaces=["/mine"])
    ad = make_ad(
        "cache-a",
        "cache",
        "http://127.0.0.1:1",
        namespaces=[namespace_ad("/mine"), namespace_ad("/pelican/monitoring")],
    )

    assert live_director.advertise(ad, token=secret).status_code == 200


# --- 400: malformed bodies -----------------------------------------------------------------


def _without(ad: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in ad.items() if name != key}


@pytest.mark.parametrize(
    ("change", "phrases"),
    [
        pytest.param(lambda ad: _without(ad, "data-url"), ["'data-url'"], id="missing-data-url"),
        pytest.param(
            lambda ad: ad | {"data-url": "ftp://127.0.0.1/x"},
            ["'data-url'", "http://"],
            id="bad-data-url",
        ),
        pytest.param(lambda ad: ad | {"data-url": "http:///no-host"}, ["'data-url'"], id="no-host"),
        pytest.param(lambda ad: _without(ad, "name"), ["'name'"], id="missing-name"),
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


# --- re-advertisement ------------------------------------------------------------------------


def test_a_readvertisement_updates_the_same_row_and_replaces_its_namespaces(live_director):
    live_director.register(
        "origin-a", "origin", "http://127.0.0.1:1111", namespaces=[namespace_ad("/old")]
    )
    first = Server.objects.get(name="origin-a")
    old_namespace_ids = set(first.namespaces.values_list("pk", flat=True))

    live_director.register(
        "origin-a",
        "origin",
        "http://127.0.0.1:2222",
        namespaces=[namespace_ad("/new"), namespace_ad("/also")],
        status="warning",
    )

    assert Server.objects.count() == 1
    second = Server.objects.get(name="origin-a")
    assert second.pk == first.pk
    assert (second.data_url, second.status) == ("http://127.0.0.1:2222", "warning")
    assert second.last_advertised_at > first.last_advertised_at
    assert sorted(second.namespaces.values_list("path", flat=True)) == ["/also", "/new"]
    assert not Namespace.objects.filter(pk__in=old_namespace_ids).exists()
    assert live_director.get("/api/v1.0/director/origin/old/f").status_code == 404
    moved = live_director.get("/api/v1.0/director/origin/new/f")
    assert moved.status_code == 307
    assert moved.headers["Location"] == "http://127.0.0.1:2222/new/f"


def test_readvertised_downtimes_replace_the_previous_ones(live_director):
    far = int((time.time() + 86400) * 1000)
    live_director.register(
        "origin-a",
        "origin",
        "http://127.0.0.1:1",
        downtimes=[{"id": "one", "startTime": far, "endTime": far + 1000}],
    )
    live_director.register(
        "origin-a",
        "origin",
        "http://127.0.0.1:1",
        downtimes=[{"id": "two", "startTime": far, "endTime": -1, "class": "unscheduled"}],
    )

    rows = list(Downtime.objects.values_list("external_id", "downtime_class", "ends_at"))
    assert rows == [("two", "UNSCHEDULED", None)]


@pytest.mark.parametrize(
    "failing",
    [
        pytest.param(
            lambda ad: (ad | {"data-url": "not a url"}, "/origins/origin-a", 400), id="bad-url"
        ),
        pytest.param(
            lambda ad: (
                ad | {"namespaces": [namespace_ad("/x"), namespace_ad("/x")]},
                "/origins/origin-a",
                400,
            ),
            id="duplicate-namespaces",
        ),
        pytest.param(
            lambda ad: (
                ad | {"expiry": (timezone.now() - dt.timedelta(seconds=5)).isoformat()},
                "/origins/origin-a",
                400,
            ),
            id="expired",
        ),
        pytest.param(
            lambda ad: (ad | {"registry-prefix": "/origins/other"}, "/origins/other", 403),
            id="other-prefix-inside-the-transaction",
        ),
    ],
)
def test_a_failing_readvertisement_leaves_the_previous_server_intact(live_director, failing):
    live_director.register(
        "origin-a", "origin", "http://127.0.0.1:1111", namespaces=[namespace_ad("/old")]
    )
    before = server_state("origin-a")
    ad, prefix, status = failing(
        make_ad("origin-a", "origin", "http://127.0.0.1:2222", [namespace_ad("/new")])
    )

    answer = post(live_director, "registerOrigin", ad, secret=live_director.token_for(prefix))

    assert_error(answer, status)
    assert server_state("origin-a") == before
    assert before["namespaces"] == ["/old"]
    kept = live_director.get("/api/v1.0/director/origin/old/f")
    assert kept.headers["Location"] == "http://127.0.0.1:1111/old/f"


# --- expiry ---------------------------------------------------------------------------------


def test_the_expiry_of_an_ad_with_a_correct_clock_is_stored_as_sent(live_director):
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1")

    live_director.advertise(ad)

    expires_at = Server.objects.get(name="origin-a").expires_at
    assert expires_at == dt.datetime.fromisoformat(ad["expiry"])


@pytest.mark.parametrize("skew", [-3600.0, 3600.0, -0.5], ids=["behind", "ahead", "half-second"])
def test_a_skewed_sender_clock_rebases_the_expiry_on_receive_time(live_director, skew):
    sender_now = timezone.now() + dt.timedelta(seconds=skew)
    ad = make_ad(
        "origin-a",
        "origin",
        "http://127.0.0.1:1",
        now=sender_now.isoformat(),
        expiry=(sender_now + dt.timedelta(seconds=600)).isoformat(),
    )
    before = timezone.now()

    answer = live_director.advertise(ad)

    after = timezone.now()
    assert answer.status_code == 200, answer.text
    expires_at = Server.objects.get(name="origin-a").expires_at
    lifetime = dt.timedelta(seconds=600)
    assert before + lifetime <= expires_at <= after + lifetime


def test_an_ad_without_expiry_lives_the_default_ttl_of_15_minutes(live_director, settings):
    assert settings.DIRECTOR_AD_TTL == 900.0
    ad = _without(_without(make_ad("origin-a", "origin", "http://127.0.0.1:1"), "expiry"), "now")
    before = timezone.now()

    live_director.advertise(ad)

    after = timezone.now()
    expires_at = Server.objects.get(name="origin-a").expires_at
    assert before + dt.timedelta(seconds=900) <= expires_at <= after + dt.timedelta(seconds=900)


def test_go_zero_time_expiry_counts_as_none_and_the_ttl_setting_applies(live_director, settings):
    settings.DIRECTOR_AD_TTL = 42.0
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1", expiry="0001-01-01T00:00:00Z")
    before = timezone.now()

    live_director.advertise(ad)

    after = timezone.now()
    expires_at = Server.objects.get(name="origin-a").expires_at
    assert before + dt.timedelta(seconds=42) <= expires_at <= after + dt.timedelta(seconds=42)


def test_an_already_expired_ad_is_refused(live_director):
    now = timezone.now()
    ad = make_ad(
        "origin-a",
        "origin",
        "http://127.0.0.1:1",
        now=now.isoformat(),
        expiry=(now - dt.timedelta(seconds=1)).isoformat(),
    )

    answer = live_director.advertise(ad)

    assert_error(answer, 400, "expired")
    assert_nothing_stored()


def test_an_expiry_in_year_9999_is_cut_to_seven_days(live_director):
    now = dt.datetime.now(dt.UTC)
    ad = make_ad(
        "origin-a",
        "origin",
        "http://127.0.0.1:1",
        now=(now - dt.timedelta(hours=1)).isoformat(),
        expiry="9999-12-31T23:59:59-14:00",
    )

    answer = live_director.advertise(ad)

    assert answer.status_code == 200, answer.text
    expires = Server.objects.get(name="origin-a").expires_at
    assert dt.timedelta(days=6, hours=23) < expires - now <= dt.timedelta(days=7, minutes=1)


def test_an_expired_server_leaves_routing_without_any_request_or_job(live_director):
    now = timezone.now()
    expiry = now + dt.timedelta(seconds=1.5)
    live_director.register(
        "origin-a",
        "origin",
        "http://127.0.0.1:1111",
        now=now.isoformat(),
        expiry=expiry.isoformat(),
    )
    assert live_director.get("/api/v1.0/director/origin/test/f").status_code == 307
    generation = registry.current().generation

    time.sleep(max(0.0, expiry.timestamp() - time.time()) + 0.2)

    answer = live_director.get("/api/v1.0/director/origin/test/f")
    assert answer.status_code == 404
    assert answer.json()["msg"].startswith("No sources found for the requested path /test/f.")
    assert registry.current().generation == generation  # no rebuild was needed


# --- wire details ---------------------------------------------------------------------------


def test_issuer_urls_sent_as_go_url_objects_are_accepted(live_director):
    namespace = namespace_ad(
        "/secure",
        Caps=caps(Read=True),
        **{
            "token-issuer": [
                {"base-paths": ["/secure"], "restricted-paths": None, "issuer": GO_ISSUER}
            ],
            "token-generation": [
                {
                    "strategy": "OAuth2",
                    "vault-server": "",
                    "max-scope-depth": 3,
                    "issuer": GO_ISSUER | {"Path": "/auth"},
                }
            ],
        },
    )

    answer = live_director.advertise(
        make_ad(
            "origin-a", "origin", "http://127.0.0.1:1", [namespace], capabilities=caps(Read=True)
        )
    )

    assert answer.status_code == 200, answer.text
    stored = Namespace.objects.get(path="/secure")
    assert stored.token_issuers == [
        {
            "issuer": "https://issuer.example:8443",
            "base-paths": ["/secure"],
            "restricted-paths": [],
        }
    ]
    assert stored.token_generations == [
        {
            "strategy": "OAuth2",
            "vault-server": "",
            "max-scope-depth": 3,
            "issuer": "https://issuer.example:8443/auth",
        }
    ]


def test_the_version_comes_from_the_user_agent_when_the_ad_has_none(live_director):
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1", version="")

    answer = live_director.advertise(ad, headers={"User-Agent": "pelican-origin/7.21.3"})

    assert answer.status_code == 200, answer.text
    assert Server.objects.get(name="origin-a").version == "7.21.3"


def test_the_version_is_unknown_without_ad_version_or_pelican_user_agent(live_director):
    ad = _without(make_ad("origin-a", "origin", "http://127.0.0.1:1"), "version")

    answer = live_director.advertise(ad, headers={"User-Agent": "curl/8.0"})

    assert answer.status_code == 200, answer.text
    assert Server.objects.get(name="origin-a").version == "unknown"


def test_an_origin_older_than_7_9_0_gets_500_incompatible_versions(live_director):
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:1")

    answer = live_director.advertise(ad, headers={"User-Agent": "pelican-origin/7.0.0"})

    message = assert_error(answer, 500)
    assert message.startswith("Incompatible versions")
    assert_nothing_stored()


def test_a_cache_at_the_minimum_version_7_8_2_is_accepted(live_director):
    ad = make_ad("cache-a", "cache", "http://127.0.0.1:1")

    answer = live_director.advertise(ad, headers={"User-Agent": "pelican-cache/7.8.2"})

    assert answer.status_code == 200, answer.text


@pytest.mark.django_db
def test_the_token_is_looked_up_once_by_its_hash_per_advertisement(client):
    """The auth step finds the token; the ad service checks that same token (item: one
    check), so one SELECT reads the token table for the whole advertisement."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    configure_director()
    _, secret = RegistrationToken.issue("/origins/once")
    ad = make_ad("once", "origin", "http://127.0.0.1:9")
    with CaptureQueriesContext(connection) as queries:
        answer = client.post(
            "/api/v1.0/director/registerOrigin",
            data=json.dumps(ad),
            content_type="application/json",
            headers={"Authorization": f"Bearer {secret}", "User-Agent": ORIGIN_UA},
        )
    assert answer.status_code == 200, answer.content
    token_reads = [
        query["sql"]
        for query in queries.captured_queries
        if query["sql"].startswith("SELECT") and "director_registrationtoken" in query["sql"]
    ]
    assert len(token_reads) == 1, token_reads


def test_a_cache_ad_keeps_the_namespaces_its_token_allows_and_drops_the_others(live_director):
    """As Pelican (allowed prefixes for caches): the ad stays, those namespaces go."""
    live_director.register(
        "origin-a", "origin", "http://origin.invalid", namespaces=[namespace_ad("/theirs")]
    )
    _, secret = RegistrationToken.issue("/caches/cache-a", namespaces=["/mine"])
    ad = make_ad(
        "cache-a",
        "cache",
        "http://cache.invalid",
        namespaces=[
            namespace_ad("/mine/data"),
            namespace_ad("/theirs"),
            namespace_ad("/pelican/x"),
        ],
    )

    answer = live_director.advertise(ad, token=secret)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "success", "msg": "Successful registration"}
    cache = Server.objects.get(name="cache-a")
    assert sorted(cache.namespaces.values_list("path", flat=True)) == ["/mine/data", "/pelican/x"]
    theirs = live_director.get("/api/v1.0/director/object/theirs/file.txt")
    assert theirs.status_code == 404  # no cache serves /theirs, and the origin has no DirectReads
    assert theirs.json()["msg"].startswith("No caches can fulfill this request")


# --- an origin and a cache may share a name (Pelican: /origins/<name> and /caches/<name>) -----


def test_an_origin_and_a_cache_may_share_a_name(live_director, file_servers):
    origin = file_servers({"/test/file.txt": b"data"}, name="origin")
    cache = file_servers(name="cache", upstream_director=live_director.url)
    live_director.register("site", "origin", origin.url)
    live_director.register("site", "cache", cache.url)
    live_director.register("site", "origin", origin.url)  # each renews its own row

    assert sorted(Server.objects.values_list("kind", "name")) == [
        ("cache", "site"),
        ("origin", "site"),
    ]
    to_cache = live_director.get("/api/v1.0/director/object/test/file.txt")
    to_origin = live_director.get("/api/v1.0/director/origin/test/file.txt")
    assert to_cache.headers["Location"] == f"{cache.url}/test/file.txt"
    assert to_origin.headers["Location"] == f"{origin.url}/test/file.txt"
    listed = live_director.get("/api/v1.0/director_ui/servers").json()
    assert sorted((item["type"], item["name"]) for item in listed) == [
        ("Cache", "site"),
        ("Origin", "site"),
    ]
    assert live_director.get("/api/v1.0/director_ui/servers/site").json()["type"] == "Origin"


def test_two_origins_may_not_share_a_name(live_director):
    live_director.register("site", "origin", "http://127.0.0.1:1111")
    other = make_ad("site", "origin", "http://127.0.0.1:2222", **{"registry-prefix": "/origins/x"})

    answer = live_director.advertise(other)

    assert_error(answer, 403, "/origins/site")
