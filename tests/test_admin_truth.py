"""An admin that never lies: what an advertisement owns is read-only, revoking a token
says (and can do) what happens to its servers, every action leaves history, errors name
the field at fault and the numbers, one word per kind of "off", times with seconds, zone
and age, and an ejected server is not called routable."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone
from helpers import create_server, make_ad

from director import presence, registry
from director.models import Downtime, Namespace, RegistrationToken, Server, Source, StatSettings


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def url(model: str, view: str, *args: object) -> str:
    return reverse(f"admin:director_{model}_{view}", args=args)


def advertised(live_director, name: str = "origin-ad", **fields) -> Server:
    live_director.register(name, "origin", "http://127.0.0.1:9101", **fields)
    return Server.objects.get(name=name)


def history(obj) -> list[str]:
    kind = ContentType.objects.get_for_model(obj)
    entries = LogEntry.objects.filter(content_type=kind, object_id=str(obj.pk)).order_by("pk")
    return [entry.get_change_message() for entry in entries]


def test_an_admin_downtime_of_an_advertised_server_survives_its_next_ad(
    admin_client, live_director
):
    server = advertised(live_director)
    form = admin_client.get(url("downtime", "add")).content.decode()
    assert 'name="source"' not in form  # no source to choose: the admin's own
    answer = admin_client.post(
        url("downtime", "add"),
        {
            "server": server.pk,
            "source": "advertised",  # ignored
            "downtime_class": "SCHEDULED",
            "severity": "",
            "description": "disk swap",
            "starts_at_0": "2030-01-01",
            "starts_at_1": "10:00:00",
        },
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    downtime = Downtime.objects.get(description="disk swap")
    assert downtime.source == Source.ADMIN
    live_director.register("origin-ad", "origin", "http://127.0.0.1:9101")  # the next ad
    assert Downtime.objects.filter(pk=downtime.pk).exists()


def test_a_downtime_from_an_ad_is_read_only(admin_client, live_director):
    ad_downtime = {"id": "d1", "startTime": 1_900_000_000_000, "endTime": 1_900_000_600_000}
    server = advertised(live_director, downtimes=[ad_downtime])
    downtime = Downtime.objects.get(server=server)
    page = admin_client.get(url("downtime", "change", downtime.pk)).content.decode()
    assert 'name="description"' not in page  # shown, not editable
    refused = admin_client.post(url("downtime", "change", downtime.pk), {"description": "x"})
    assert refused.status_code == 403
    server_page = admin_client.get(url("server", "change", server.pk)).content.decode()
    assert "Downtimes from its advertisement (read-only)" in server_page
    assert "Downtimes set in the admin" in server_page


def test_the_namespaces_page_refuses_an_advertised_server_with_a_message(
    admin_client, live_director
):
    server = advertised(live_director)
    answer = admin_client.post(
        url("namespace", "add"),
        {"server": server.pk, "path": "/extra", "public_reads": "on", "reads": "on",
         "token_issuers": "[]", "token_generations": "[]"},
    )  # fmt: skip
    assert answer.status_code == 200
    assert "origin-ad is an advertised server: its namespaces come from its advertisements" in (
        answer.content.decode()
    )
    assert not Namespace.objects.filter(path="/extra").exists()
    own = Namespace.objects.get(server=server)
    assert admin_client.post(url("namespace", "change", own.pk), {"path": "/x"}).status_code == 403


def test_the_token_page_revokes_and_says_its_servers_stay_until_their_ads_expire(
    admin_client, live_director
):
    server = advertised(live_director)
    token = RegistrationToken.objects.get(registry_prefix="/origins/origin-ad")
    page = admin_client.get(url("registrationtoken", "change", token.pk)).content.decode()
    assert 'name="_revoke"' in page and 'name="_revoke_expire"' in page
    assert "origin-ad (ad expires" in page
    answer = admin_client.post(
        url("registrationtoken", "change", token.pk),
        {"description": "", "namespace_prefixes": "", "_revoke": "Revoke"},
        follow=True,
    )
    text = answer.content.decode()
    assert "Revoked 1 token(s)." in text
    assert "stay routable until their advertisements expire (the last 20" in text
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert server.unroutable_reason() is None  # still routable, as the message says
    assert len(history(token)) == 1 and history(token)[0].startswith("Revoked (")


def test_revoke_and_expire_takes_its_servers_out_at_once(admin_client, live_director):
    server = advertised(live_director)
    token = RegistrationToken.objects.get(registry_prefix="/origins/origin-ad")
    answer = admin_client.post(
        url("registrationtoken", "change", token.pk),
        {"description": "", "namespace_prefixes": "", "_revoke_expire": "x"},
        follow=True,
    )
    assert "Expired 1 server(s) now: origin-ad." in answer.content.decode()
    server.refresh_from_db()
    assert server.unroutable_reason() is not None
    assert "origin-ad" not in {s.name for s in registry.current().servers.values()
                               if s.routable(timezone.now().timestamp())}  # fmt: skip
    assert history(server)[-1].startswith("Advertisement expired now: its token was revoked")
    assert live_director.advertise(make_ad("origin-ad", "origin", "http://x")).status_code == 403


def test_bulk_actions_write_history_saying_what_changed(admin_client, db):
    servers = [create_server(f"s{i}", "origin", f"http://127.0.0.1:91{i:02d}") for i in range(3)]
    changelist = url("server", "changelist")
    ids = [str(server.pk) for server in servers]
    admin_client.post(changelist, {"action": "disable_servers", "_selected_action": ids})
    admin_client.post(changelist, {"action": "enable_servers", "_selected_action": ids[:1]})
    assert history(servers[0]) == [
        "Disabled in the admin (In routing: off).",
        "Enabled (In routing: on).",
    ]
    assert history(servers[2]) == ["Disabled in the admin (In routing: off)."]
    token, _ = RegistrationToken.issue("/origins/s0")
    admin_client.post(
        url("registrationtoken", "changelist"),
        {"action": "revoke", "_selected_action": [str(token.pk)]},
    )
    assert history(token)[0].startswith("Revoked (")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"stat_timeout": "3.0"},
            "stat_timeout",
            "stat timeout 3.0 s + max wait 0.1 s must be below the redirect timeout 2.5 s",
        ),
        (
            {"redirect_timeout": "2.0"},
            "redirect_timeout",
            "stat timeout 2.0 s + max wait 0.1 s must be below the redirect timeout 2.0 s",
        ),
        (
            {"ejection_base_time": "400"},
            "ejection_base_time",
            "The longest ejection, 300.0 s, must be at least the base ejection time, 400.0 s.",
        ),
    ],
)
def test_a_settings_error_lands_on_the_field_changed_with_the_numbers(
    director_settings, changes, field, message
):
    row = StatSettings.load()
    for name, value in changes.items():
        setattr(row, name, float(value))
    with pytest.raises(Exception) as raised:
        row.full_clean()
    assert raised.value.message_dict == {field: [raised.value.message_dict[field][0]]}
    assert raised.value.message_dict[field][0].startswith(message)


def test_one_word_per_kind_of_off_and_times_with_seconds_zone_and_age(admin_client, live_director):
    server = advertised(live_director, directorTest=True)
    page = admin_client.get(url("server", "change", server.pk)).content.decode()
    assert "Director test disabled" not in page
    assert "not run: its ad says directorTest: true" in page
    assert " UTC (" in page and " s ago)" in page
    listing = admin_client.get(url("server", "changelist")).content.decode()
    assert " s ago)" in listing  # last advertised, with its age
    defined = create_server("defined", "origin", "http://127.0.0.1:9200")
    form = admin_client.get(url("server", "change", defined.pk)).content.decode()
    assert "In routing" in form and "Skip the director&#x27;s health tests" in form


def test_view_site_opens_the_console_and_the_header_names_the_director(admin_client, settings):
    page = admin_client.get("/admin/").content.decode()
    assert 'href="/view/"' in page
    assert f"director {settings.DIRECTOR_NAME}" in page


def test_an_ejected_server_is_not_called_routable(admin_client, db):
    server = create_server("hung", "origin", "http://127.0.0.1:9300")
    pool = presence.engine.pool_for(presence.target_for(registry.current().servers["hung"]))
    for _ in range(registry.current().settings.ejection_consecutive_failures):
        pool.detector.record(fault=True, probe=False)
    listing = admin_client.get(url("server", "changelist")).content.decode()
    assert "ejected, " in listing and "s left (times ejected: 1)" in listing
    assert Server.objects.get(pk=server.pk).unroutable_reason() is None


def test_times_in_the_downtime_list_have_seconds_zone_and_age(admin_client, db):
    server = create_server("later", "origin", "http://127.0.0.1:9301")
    Downtime.objects.create(server=server, starts_at=timezone.now() + dt.timedelta(hours=2))
    listing = admin_client.get(url("downtime", "changelist")).content.decode()
    assert "UTC (in 1 h 59 min)" in listing or "UTC (in 2 h 0 min)" in listing
    assert "indefinite" in listing
