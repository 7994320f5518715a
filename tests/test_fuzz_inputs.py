"""Property tests over HTTP (Django's test client, the real views): any request path gets
an answer that is not a server error, and any ad is either stored whole and read back as
sent, or refused with a 4xx and nothing stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import ORIGIN_UA, configure_director, create_server, make_ad, namespace_ad
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from director.models import Namespace, RegistrationToken, Server

pytestmark = pytest.mark.django_db

EXAMPLES = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SEGMENT = st.one_of(
    st.sampled_from(["", ".", "..", "test", "a b", "%2F", "é", "x" * 300]),
    st.text(max_size=20),
)


@pytest.fixture
def federation(client):
    configure_director()
    create_server("o1", "origin", "http://127.0.0.1:9", {"/test": {}})
    return client


@given(segments=st.lists(SEGMENT, max_size=8), prefix=st.sampled_from(["object", "origin"]))
@EXAMPLES
def test_any_redirect_path_gets_an_answer_that_is_not_a_server_error(federation, segments, prefix):
    path = "/".join(segments)
    for url in (f"/api/v1.0/director/{prefix}/{path}", f"/{path}"):
        answer = federation.get(url)
        assert answer.status_code < 500, (url, answer.content)
        if answer.status_code >= 400:
            assert answer.json()["status"] == "error"


JSON_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30)),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=6,
)
AD_FIELDS = [
    "name",
    "registry-prefix",
    "data-url",
    "web-url",
    "capabilities",
    "namespaces",
    "status",
    "version",
    "now",
    "expiry",
    "downtimes",
    "coordinate",
    "requiredFeatures",
    "directorTest",
]


@st.composite
def ads(draw: st.DrawFn) -> dict[str, Any]:
    """A valid ad with some of its fields replaced by anything JSON can carry."""
    ad = make_ad(
        "fuzz",
        "origin",
        "http://127.0.0.1:9/fuzz",
        [namespace_ad(f"/fuzz/{number}") for number in range(draw(st.integers(0, 3)))],
    )
    for field in draw(st.lists(st.sampled_from(AD_FIELDS), max_size=3, unique=True)):
        ad[field] = draw(JSON_VALUE)
    return ad


@given(ad=ads())
@EXAMPLES
def test_an_ad_is_stored_whole_and_as_sent_or_refused_with_nothing_stored(client, ad):
    configure_director()
    Server.objects.all().delete()  # each example on an empty registry
    RegistrationToken.objects.all().delete()
    secret = RegistrationToken.issue("/origins/fuzz")[1]
    answer = client.post(
        "/api/v1.0/director/registerOrigin",
        data=json.dumps(ad),
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}", "User-Agent": ORIGIN_UA},
    )
    assert answer.status_code < 500, answer.content
    stored = (
        Server.objects.filter(name=ad.get("name")).first()
        if isinstance(ad.get("name"), str)
        else None
    )
    if answer.status_code == 200:
        assert stored is not None and stored.name == ad["name"]
        assert stored.registry_prefix == ad["registry-prefix"]
        paths = {item["path"].rstrip("/") or "/" for item in ad.get("namespaces") or []}
        assert set(Namespace.objects.filter(server=stored).values_list("path", flat=True)) == paths
    else:
        assert 400 <= answer.status_code < 500
        assert answer.json()["status"] == "error"
        assert stored is None
        assert not Namespace.objects.filter(server__name="fuzz").exists()
