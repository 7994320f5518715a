"""Who may advertise what at registerOrigin and registerCache (reference 1.6): the bearer
token, its registry prefix, the namespaces it allows, and the name a prefix owns."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone
from helpers import CACHE_UA, ORIGIN_UA, configure_director, create_server, make_ad, namespace_ad
from registration_support import assert_error, assert_nothing_stored, post, server_state

from director.models import Namespace, RegistrationToken, Server, Source

# --- the token of an accepted ad ---------------------------------------------------------------


def test_the_token_records_when_it_was_last_used(live_director):
    live_director.token_for("/origins/origin-a")
    token = RegistrationToken.objects.get(registry_prefix="/origins/origin-a")
    assert token.last_used_at is None
    before = timezone.now()

    live_director.register("origin-a", "origin", "http://127.0.0.1:8443")

    token.refresh_from_db()
    assert before <= token.last_used_at <= timezone.now()


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
