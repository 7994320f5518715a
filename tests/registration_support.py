"""What the registration tests share (tests/test_registration*.py): a POST with or without a
bearer secret, the error body's shape, and the registry's rows before and after an ad."""

from __future__ import annotations

import json
from typing import Any

import requests
from helpers import ORIGIN_UA

from director.models import Downtime, Namespace, Server


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


def without(ad: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in ad.items() if name != key}
