"""The client's address for locating it (reference 3.5): the peer, or the address a
trusted proxy forwarded."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from director import locate

pytestmark = pytest.mark.usefixtures("fresh_once_log")  # a new "log once" memory per test


# --- the client's address ------------------------------------------------------------------


def http_request(peer: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/api/v1.0/director/object/test/a", **extra)


def test_the_client_is_the_peer_when_no_proxy_is_trusted(locate_settings):
    locate_settings.DIRECTOR_TRUSTED_PROXIES = []

    assert locate.client_ip(http_request("192.0.2.5", "203.0.113.7")) == "192.0.2.5"


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(locate_settings):
    locate_settings.DIRECTOR_TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert locate.client_ip(http_request("192.0.2.5", "203.0.113.7")) == "192.0.2.5"


def test_x_forwarded_for_from_a_trusted_peer_names_the_client(locate_settings):
    locate_settings.DIRECTOR_TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert locate.client_ip(http_request("10.0.0.1", "203.0.113.7")) == "203.0.113.7"


def test_the_rightmost_untrusted_hop_is_the_client(locate_settings):
    # The client may write anything at the left; only what our proxies appended counts.
    locate_settings.DIRECTOR_TRUSTED_PROXIES = ["10.0.0.0/8", "192.0.2.1"]

    forwarded = "1.2.3.4, 203.0.113.7, 10.9.9.9, 192.0.2.1"
    assert locate.client_ip(http_request("10.0.0.1", forwarded)) == "203.0.113.7"


def test_ipv6_proxies_and_clients_are_understood(locate_settings):
    locate_settings.DIRECTOR_TRUSTED_PROXIES = ["::1", "fd00::/8"]

    forwarded = "2001:db8::5, fd00::7"
    assert locate.client_ip(http_request("::1", forwarded)) == "2001:db8::5"
    assert locate.client_ip(http_request("::1", "[2001:db8::6]")) == "2001:db8::6"


@pytest.mark.parametrize(
    "forwarded", ["203.0.113.7, garbage", "unknown", "203.0.113.7:8080", "203.0.113.7; 10.0.0.2"]
)
def test_a_malformed_forwarding_chain_falls_back_to_the_peer(locate_settings, forwarded):
    locate_settings.DIRECTOR_TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert locate.client_ip(http_request("10.0.0.1", forwarded)) == "10.0.0.1"


def test_a_trusted_peer_without_x_forwarded_for_is_the_client(locate_settings):
    locate_settings.DIRECTOR_TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert locate.client_ip(http_request("10.0.0.1")) == "10.0.0.1"
    assert locate.client_ip(http_request("10.0.0.1", " , ")) == "10.0.0.1"


def test_an_invalid_trusted_proxy_setting_trusts_nobody(locate_settings):
    locate_settings.DIRECTOR_TRUSTED_PROXIES = ["10.0.0.0/8", "not-a-network"]

    assert locate.client_ip(http_request("10.0.0.1", "203.0.113.7")) == "10.0.0.1"
