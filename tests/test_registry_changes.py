"""One mechanism for "the registry changed": each write is one change of the generation.

These tests commit for real (``transactional_db``): the shared generation is what other
processes follow, and a change is recorded once per committed transaction.
"""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from django.urls import reverse
from helpers import ORIGIN_UA, configure_director, create_server, make_ad, namespace_ad

from director import registry
from director.models import Namespace, RegistrationToken, Server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def generation() -> int:
    return registry.read_generation()


def advertise(client, ad: dict) -> None:
    _, secret = RegistrationToken.issue(ad["registry-prefix"])
    answer = client.post(
        "/api/v1.0/director/registerOrigin",
        data=json.dumps(ad),
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}", "User-Agent": ORIGIN_UA},
    )
    assert answer.status_code == 200, answer.content


def test_an_ad_with_a_thousand_namespaces_is_one_change_and_so_is_its_readvertisement(client):
    configure_director()
    ad = make_ad(
        "big",
        "origin",
        "http://127.0.0.1:9",
        [namespace_ad(f"/ns/{number}") for number in range(1000)],
    )
    before = generation()
    advertise(client, ad)
    assert generation() == before + 1
    advertise(client, make_ad("big", "origin", "http://127.0.0.1:9", ad["namespaces"]))
    assert generation() == before + 2
    assert Namespace.objects.count() == 1000


def test_an_admin_save_with_inline_namespaces_is_one_change(admin_client):
    server = create_server("defined", "origin", "http://127.0.0.1:9001", {"/one": {}})
    before = generation()
    answer = admin_client.post(
        reverse("admin:director_server_change", args=[server.pk]),
        {
            "name": "defined",
            "kind": "origin",
            "enabled": "on",
            "status": "ok",
            "version": "unknown",
            "data_url": "http://127.0.0.1:9002",
            "public_reads": "on",
            "reads": "on",
            "required_features": "[]",
            "namespaces-TOTAL_FORMS": "3",
            "namespaces-INITIAL_FORMS": "1",
            "namespaces-0-id": str(server.namespaces.get().pk),
            "namespaces-0-server": str(server.pk),
            "namespaces-0-path": "/one",
            "namespaces-0-public_reads": "on",
            "namespaces-0-token_issuers": "[]",
            "namespaces-0-token_generations": "[]",
            "namespaces-1-server": str(server.pk),
            "namespaces-1-path": "/two",
            "namespaces-1-token_issuers": "[]",
            "namespaces-1-token_generations": "[]",
            "namespaces-2-server": str(server.pk),
            "namespaces-2-path": "/three",
            "namespaces-2-token_issuers": "[]",
            "namespaces-2-token_generations": "[]",
            "downtimes-TOTAL_FORMS": "0",
            "downtimes-INITIAL_FORMS": "0",
        },
    )
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    assert sorted(Server.objects.get().namespaces.values_list("path", flat=True)) == [
        "/one",
        "/three",
        "/two",
    ]
    assert generation() == before + 1


def test_an_admin_action_on_several_servers_is_one_change(admin_client):
    servers = [
        create_server(f"origin-{n}", "origin", f"http://127.0.0.1:{9000 + n}") for n in range(3)
    ]
    before = generation()
    answer = admin_client.post(
        reverse("admin:director_server_changelist"),
        {"action": "disable_servers", "_selected_action": [str(s.pk) for s in servers]},
    )
    assert answer.status_code == 302
    assert not Server.objects.filter(enabled=True).exists()
    assert generation() == before + 1


def test_an_admin_bulk_delete_is_one_change(admin_client):
    servers = [
        create_server(f"origin-{n}", "origin", f"http://127.0.0.1:{9000 + n}") for n in range(3)
    ]
    before = generation()
    answer = admin_client.post(
        reverse("admin:director_server_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [str(s.pk) for s in servers],
            "post": "yes",
        },
    )
    assert answer.status_code == 302
    assert not Server.objects.exists()
    assert generation() == before + 1


def test_a_settings_save_in_the_admin_is_one_change_and_reaches_the_snapshot(admin_client):
    row = configure_director()
    before = generation()
    form = {
        field.name: getattr(row, field.name)
        for field in row._meta.concrete_fields
        if field.name not in ("id", "updated_at")
    }
    form = {
        name: ("on" if value else "") if isinstance(value, bool) else value
        for name, value in form.items()
    }
    form["stat_timeout"] = 1.5
    answer = admin_client.post(reverse("admin:director_statsettings_change", args=[1]), form)
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    assert generation() == before + 1
    assert registry.current().settings.stat_timeout == 1.5


def test_changes_in_one_transaction_are_one_change_and_a_rollback_is_none():
    before = generation()
    with transaction.atomic():
        registry.registry_changed()
        registry.registry_changed()
    assert generation() == before + 1

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        registry.registry_changed()
        raise Abort
    assert generation() == before + 1
    registry.registry_changed()  # outside a transaction: a change of its own
    assert generation() == before + 2


def test_a_plain_orm_save_is_no_change_until_announced():
    """ORM writes outside the admin and the API announce themselves (README)."""
    server = create_server("quiet", "origin", "http://127.0.0.1:9001")
    before = generation()
    server.enabled = False
    server.save()
    assert generation() == before
    assert ("origin", "quiet") in registry.current().servers
    registry.registry_changed()
    assert generation() == before + 1
    assert "quiet" not in registry.current().servers
