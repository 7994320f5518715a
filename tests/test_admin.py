"""The Django admin as the operator's registry: pages load, tokens, actions change routing."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from helpers import create_server, make_ad

from director import locate, registry
from director.federation import issuer
from director.models import (
    Downtime,
    GeoIPOverride,
    Namespace,
    NamespaceRegistration,
    RegistrationStatus,
    RegistrationToken,
    Server,
    StatSettings,
)

REGISTERED = sorted(model._meta.label_lower for model in admin.site._registry)


def admin_url(label: str, view: str, *args: object) -> str:
    app_label, model_name = label.split(".")
    return reverse(f"admin:{app_label}_{model_name}_{view}", args=args)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """admin_user hashes a password per test; the default hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def registry_rows(db, admin_user):
    """One row of every registered model, keyed by model label."""
    server = create_server("defined-origin", "origin", "http://127.0.0.1:9001", {"/test": {}})
    downtime = Downtime.objects.create(
        server=server,
        starts_at=timezone.now(),
        ends_at=timezone.now() + dt.timedelta(hours=1),
        description="maintenance",
    )
    token, _ = RegistrationToken.issue("/origins/site", "for the test")
    return {
        "auth.group": Group.objects.create(name="operators"),
        "auth.user": admin_user,
        "director.server": server,
        "director.namespace": Namespace.objects.get(server=server),
        "director.downtime": downtime,
        "director.geoipoverride": GeoIPOverride.objects.create(
            network="192.0.2.0/24", latitude=40.8, longitude=-96.7
        ),
        "director.registrationtoken": token,
        "director.statsettings": StatSettings.load(),
        "director.namespaceregistration": NamespaceRegistration.objects.create(
            prefix="/origins/site", pubkey='{"keys":[]}', site_name="site"
        ),
        "director.issuerkey": issuer.create_key(timezone.now()),
        **_login_records(),
    }


def _login_records() -> dict[str, object]:
    """One row of each of django-axes' login records (the admin lists them)."""
    seen = {"user_agent": "test", "ip_address": "192.0.2.1", "username": "mallory"}
    seen |= {"http_accept": "*/*", "path_info": "/admin/login/"}
    return {
        "axes.accessattempt": AccessAttempt.objects.create(
            **seen, get_data="", post_data="", failures_since_start=1
        ),
        "axes.accessfailurelog": AccessFailureLog.objects.create(**seen),
        # the admin client's own login made one
        "axes.accesslog": AccessLog.objects.first() or AccessLog.objects.create(**seen),
    }


def test_the_admin_registers_every_director_model():
    assert REGISTERED == [
        "auth.group",
        "auth.user",
        "axes.accessattempt",
        "axes.accessfailurelog",
        "axes.accesslog",
        "director.downtime",
        "director.geoipoverride",
        "director.issuerkey",
        "director.namespace",
        "director.namespaceregistration",
        "director.registrationtoken",
        "director.server",
        "director.statsettings",
    ]


@pytest.mark.parametrize(
    "label", [label for label in REGISTERED if label != "director.statsettings"]
)
def test_the_changelist_loads(admin_client, registry_rows, label):
    answer = admin_client.get(admin_url(label, "changelist"))

    assert answer.status_code == 200
    assert answer.context["cl"].result_count == 1


@pytest.mark.parametrize("label", REGISTERED)
def test_the_change_page_loads(admin_client, registry_rows, label):
    answer = admin_client.get(admin_url(label, "change", registry_rows[label].pk))

    assert answer.status_code == 200
    assert answer.context["original"] == registry_rows[label]


@pytest.mark.parametrize(
    "query", ["q=defined", "kind__exact=origin", "enabled__exact=1", "source__exact=admin"]
)
def test_the_server_changelist_searches_and_filters(admin_client, registry_rows, query):
    answer = admin_client.get(f"{admin_url('director.server', 'changelist')}?{query}")

    assert answer.status_code == 200
    assert [server.name for server in answer.context["cl"].result_list] == ["defined-origin"]


def test_the_add_pages_load(admin_client, db):
    for label in ("director.server", "director.registrationtoken", "director.downtime"):
        assert admin_client.get(admin_url(label, "add")).status_code == 200


def test_the_settings_changelist_redirects_to_its_single_change_page(admin_client, db):
    answer = admin_client.get(admin_url("director.statsettings", "changelist"))

    assert answer.status_code == 302
    assert answer["Location"] == "/admin/director/statsettings/1/change/"
    assert admin_client.get(answer["Location"]).status_code == 200


def test_the_settings_row_cannot_be_added_or_deleted(admin_client, db):
    StatSettings.load()

    assert admin_client.get(admin_url("director.statsettings", "add")).status_code == 403
    assert admin_client.get(admin_url("director.statsettings", "delete", 1)).status_code == 403


def test_adding_a_token_shows_its_secret_once_and_stores_only_the_hash(admin_client, db):
    answer = admin_client.post(
        admin_url("director.registrationtoken", "add"),
        {"registry_prefix": "/caches/site-x", "description": "new cache"},
    )

    assert answer.status_code == 200  # the secret's page itself, not a redirect
    assert "no-store" in answer["Cache-Control"]
    match = re.search(r'<code id="token-secret"[^>]*>([^<]+)</code>', answer.content.decode())
    assert match
    secret = match.group(1)
    # Nothing carries it to another response: no message, no cookie.
    assert all(secret not in morsel.value for morsel in answer.cookies.values())
    assert not list(answer.context["messages"])
    token = RegistrationToken.objects.get()
    assert (token.registry_prefix, token.description) == ("/caches/site-x", "new cache")
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert token.token_hash != secret
    change_page = admin_client.get(admin_url("director.registrationtoken", "change", token.pk))
    assert secret not in change_page.content.decode()


def test_a_token_with_a_bad_prefix_is_refused_by_the_add_form(admin_client, db):
    answer = admin_client.post(
        admin_url("director.registrationtoken", "add"), {"registry_prefix": "/servers/x"}
    )

    assert answer.status_code == 200
    assert answer.context["adminform"].form.errors["registry_prefix"] == [
        "Use /origins/<site> or /caches/<site> (one path segment)."
    ]
    assert RegistrationToken.objects.count() == 0


def run_action(client, label: str, action: str, *pks: int):
    return client.post(
        admin_url(label, "changelist"),
        {"action": action, "_selected_action": [str(pk) for pk in pks]},
        follow=True,
    )


@pytest.mark.django_db(transaction=True)
def test_the_revoke_action_stops_a_token_from_registering(admin_client, live_director):
    token, secret = RegistrationToken.issue("/origins/origin-a")
    ad = make_ad("origin-a", "origin", "http://127.0.0.1:9001")

    answer = run_action(admin_client, "director.registrationtoken", "revoke", token.pk)

    assert [str(message) for message in answer.context["messages"]] == ["Revoked 1 token(s)."]
    token.refresh_from_db()
    assert token.revoked_at is not None
    refused = live_director.advertise(ad, token=secret)
    assert refused.status_code == 403
    assert not Server.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_disable_and_enable_actions_take_a_server_out_of_routing_and_back(
    admin_client, live_director
):
    live_director.register("origin-a", "origin", "http://127.0.0.1:9001")
    server = Server.objects.get(name="origin-a")
    assert ("origin", "origin-a") in registry.current().servers

    run_action(admin_client, "director.server", "disable_servers", server.pk)

    assert "origin-a" not in registry.current().servers
    assert live_director.get("/api/v1.0/director/origin/test/f").status_code == 404

    run_action(admin_client, "director.server", "enable_servers", server.pk)

    assert ("origin", "origin-a") in registry.current().servers
    answer = live_director.get("/api/v1.0/director/origin/test/f")
    assert answer.headers["Location"] == "http://127.0.0.1:9001/test/f"


@pytest.mark.django_db(transaction=True)
def test_expire_now_ends_an_advertisement_until_the_server_advertises_again(
    admin_client, live_director
):
    live_director.register("origin-a", "origin", "http://127.0.0.1:9001")
    defined = create_server("defined", "origin", "http://127.0.0.1:9002", {"/other": {}})
    advertised = Server.objects.get(name="origin-a")

    answer = run_action(admin_client, "director.server", "expire_now", advertised.pk, defined.pk)

    messages = [str(message) for message in answer.context["messages"]]
    assert messages[0].startswith("Expired 1 advertised server(s)")
    assert messages[1].startswith("1 admin-defined server(s) have no advertisement to expire")
    advertised.refresh_from_db()
    assert advertised.expires_at <= timezone.now()
    assert sorted(registry.current().servers) == [("origin", "defined")]
    assert live_director.get("/api/v1.0/director/origin/test/f").status_code == 404
    assert live_director.get("/api/v1.0/director/origin/other/f").status_code == 307

    live_director.register("origin-a", "origin", "http://127.0.0.1:9001")
    assert live_director.get("/api/v1.0/director/origin/test/f").status_code == 307


def test_an_advertised_server_shows_its_ad_fields_read_only(admin_client, db):
    server = Server.objects.create(
        name="advertised",
        kind="origin",
        data_url="http://127.0.0.1:9001",
        registry_prefix="/origins/advertised",
        source="advertised",
        expires_at=timezone.now() + dt.timedelta(minutes=10),
    )

    answer = admin_client.get(admin_url("director.server", "change", server.pk))

    assert answer.status_code == 200
    form = answer.context["adminform"].form
    assert sorted(form.fields) == ["enabled", "stat_concurrency_limit"]
    page = answer.content.decode()
    assert 'name="data_url"' not in page
    assert "http://127.0.0.1:9001" in page
    inline = answer.context["inline_admin_formsets"][0]
    assert (inline.has_add_permission, inline.has_change_permission) == (False, False)


def test_an_admin_defined_server_is_editable(admin_client, registry_rows):
    server = registry_rows["director.server"]

    answer = admin_client.get(admin_url("director.server", "change", server.pk))

    form = answer.context["adminform"].form
    for field in ("name", "kind", "data_url", "auth_url", "public_reads", "expires_at"):
        assert field in form.fields
    assert "source" not in form.fields


def test_an_edit_of_an_advertised_server_cannot_change_its_data_url(admin_client, db):
    server = Server.objects.create(
        name="advertised",
        kind="origin",
        data_url="http://127.0.0.1:9001",
        registry_prefix="/origins/advertised",
        source="advertised",
        expires_at=timezone.now() + dt.timedelta(minutes=10),
    )

    answer = admin_client.post(
        admin_url("director.server", "change", server.pk),
        {
            "enabled": "",
            "data_url": "http://attacker.example",
            "stat_concurrency_limit": "",
            "namespaces-TOTAL_FORMS": "0",
            "namespaces-INITIAL_FORMS": "0",
            "downtimes-TOTAL_FORMS": "0",
            "downtimes-INITIAL_FORMS": "0",
            # its advertised downtimes, read-only
            "downtimes-2-TOTAL_FORMS": "0",
            "downtimes-2-INITIAL_FORMS": "0",
        },
    )

    assert answer.status_code == 302
    server.refresh_from_db()
    assert (server.data_url, server.enabled) == ("http://127.0.0.1:9001", False)


# The header-safety checks of advertisements (test_registration_bad_ads.py) hold for admin edits.
def test_a_namespace_edited_in_the_admin_gets_the_same_checks(db):
    server = Server.objects.create(name="o", kind="origin", data_url="http://127.0.0.1:1")
    namespace = Namespace(
        server=server, path="/ns", token_issuers=[{"issuer": "https://a\r\nb", "base-paths": []}]
    )

    with pytest.raises(ValidationError, match="token-issuer"):
        namespace.full_clean()


@pytest.mark.parametrize(
    ("network", "latitude", "problem"),
    [
        ("not-an-ip", "10", "is not an IPv4/IPv6 address or CIDR"),
        ("10.0.0.0/33", "10", "is not an IPv4/IPv6 address or CIDR"),
        ("2001:db8::/32", "95", "Ensure this value is less than or equal to 90.0"),
    ],
)
def test_the_override_form_refuses_invalid_rows_with_a_message(
    admin_client, db, network, latitude, problem
):
    answer = admin_client.post(
        admin_url("director.geoipoverride", "add"),
        {"network": network, "latitude": latitude, "longitude": "-96.7", "position": "0"},
    )

    assert answer.status_code == 200  # the form again, with its errors
    assert problem in answer.content.decode()
    assert not GeoIPOverride.objects.exists()


def test_the_override_form_accepts_v4_and_v6_networks(admin_client, db):
    for network in ("192.0.2.0/24", "2001:db8::/32", "198.51.100.7"):
        answer = admin_client.post(
            admin_url("director.geoipoverride", "add"),
            {"network": network, "latitude": "40.8", "longitude": "-96.7", "position": "0"},
        )
        assert answer.status_code == 302, answer.content.decode()[:500]
    assert GeoIPOverride.objects.count() == 3


def _login(client, username: str, password: str, address: str):
    return client.post(
        reverse("admin:login"),
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
    )


def test_admin_logins_are_throttled_per_address_never_per_user_name_alone(
    client, admin_user, settings
):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):  # the form says the password is wrong
        assert _login(client, "admin", "wrong", "192.0.2.10").status_code == 200
    assert _login(client, "admin", "wrong", "192.0.2.10").status_code == 429  # the third
    locked = _login(client, "admin", "password", "192.0.2.10")  # even the right one now
    assert locked.status_code == 429
    assert locked.json()["status"] == "error" and "failed logins" in locked.json()["msg"]
    assert int(locked["Retry-After"]) == int(settings.DIRECTOR_ADMIN_LOCKOUT_SECONDS)
    # the address is locked for any user name
    assert _login(client, "someone", "x", "192.0.2.10").status_code == 429
    # others are not: the real administrator, from another address, logs in
    other = _login(client, "someone", "x", "198.51.100.7")
    assert other.status_code == 200 and "Please enter the correct" in other.content.decode()
    assert _login(client, "admin", "password", "198.51.100.7").status_code == 302


def test_an_attack_from_one_address_behind_a_proxy_locks_out_only_that_address(
    client, admin_user, settings
):
    """Through a trusted proxy the client's address is X-Forwarded-For's: 30 wrong
    passwords for "admin" from one address lock that address, and the administrator
    logging in from another address behind the same proxy gets in."""
    settings.AXES_FAILURE_LIMIT = 30
    settings.DIRECTOR_TRUSTED_PROXIES = ["10.0.0.1/32"]
    locate.trusted_proxies.cache_clear()
    try:

        def through_proxy(password: str, client_address: str):
            return client.post(
                reverse("admin:login"),
                {"username": "admin", "password": password, "next": "/admin/"},
                REMOTE_ADDR="10.0.0.1",
                HTTP_X_FORWARDED_FOR=client_address,
            )

        attack = [through_proxy("wrong", "203.0.113.66").status_code for _ in range(31)]
        administrator = through_proxy("password", "198.51.100.20")
        attacker_again = through_proxy("password", "203.0.113.66")
    finally:
        locate.trusted_proxies.cache_clear()

    assert attack[:29] == [200] * 29 and attack[29:] == [429, 429]
    assert administrator.status_code == 302
    assert attacker_again.status_code == 429


def test_a_successful_login_clears_the_failures(client, admin_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        _login(client, "admin", "wrong", "192.0.2.11")
    assert _login(client, "admin", "password", "192.0.2.11").status_code == 302
    client.logout()
    for _ in range(2):
        _login(client, "admin", "wrong", "192.0.2.11")
    assert _login(client, "admin", "password", "192.0.2.11").status_code == 302


def test_a_cache_may_take_an_origins_name_but_a_second_origin_may_not(db):
    create_server("site", "origin", "http://127.0.0.1:9001", rebuild=False)
    cache = Server(name="site", kind="cache", data_url="http://127.0.0.1:9002")
    cache.full_clean()  # the admin's form runs this
    cache.save()
    twin = Server(name="site", kind="origin", data_url="http://127.0.0.1:9003")
    with pytest.raises(ValidationError, match="Name and Kind already exists"):
        twin.full_clean()


def test_pending_registrations_come_first_and_the_actions_decide_and_log(
    admin_client, admin_user, caplog
):
    for prefix, status in (("/a", "approved"), ("/b", "pending"), ("/c", "denied")):
        NamespaceRegistration.objects.create(prefix=prefix, pubkey="{}", status=status)
    url = admin_url("director.namespaceregistration", "changelist")

    listed = [row.prefix for row in admin_client.get(url).context["cl"].result_list]
    with caplog.at_level("INFO", logger="director.federation.registry"):
        approved = admin_client.post(
            url,
            {
                "action": "approve",
                "_selected_action": [NamespaceRegistration.objects.get(prefix="/b").pk],
            },
        )
    admin_client.post(
        url,
        {"action": "deny", "_selected_action": [NamespaceRegistration.objects.get(prefix="/a").pk]},
    )

    assert listed[0] == "/b"
    assert approved.status_code == 302
    row = NamespaceRegistration.objects.get(prefix="/b")
    assert (row.status, row.approved_by) == (RegistrationStatus.APPROVED, admin_user.username)
    assert NamespaceRegistration.objects.get(prefix="/a").status == RegistrationStatus.DENIED
    assert f"/b approved by {admin_user.username}" in caplog.text
