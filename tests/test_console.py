"""The console's pages and JSON through the Django test client: who may see them, what
the servers table says of each state, filters, sorting, pages, the map, namespaces, and
the live explain. The real browser is tests/test_console_browser.py."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.utils import timezone
from helpers import create_server

from director import presence, registry, registry_rows
from director.console.worldmap import land_path, project
from director.models import Downtime, Source
from director.serving.traffic import traffic

API = "/api/v1.0/console"


@pytest.fixture
def staff(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_user("operator", password="x", is_staff=True))
    return client


@pytest.fixture
def federation(director_settings):
    """Two origins and a cache in /data; one origin disabled, one cache in downtime."""
    create_server(
        "origin-a",
        "origin",
        "http://127.0.0.1:7001",
        {"/data": {}},
        latitude=43.07,
        longitude=-89.4,
        rebuild=False,
    )
    create_server(
        "origin-off", "origin", "http://127.0.0.1:7002", {"/data": {}}, enabled=False, rebuild=False
    )
    down = create_server(
        "cache-down",
        "cache",
        "http://127.0.0.1:7003",
        {"/data": {}},
        latitude=41.88,
        longitude=-87.63,
        rebuild=False,
    )
    create_server(
        "cache-b",
        "cache",
        "http://127.0.0.1:7004",
        {"/private": {"public_reads": False}},
        rebuild=False,
    )
    Downtime.objects.create(
        server=down, source=Source.ADMIN, starts_at=timezone.now() - dt.timedelta(minutes=5)
    )
    registry.rebuild()
    registry_rows.forget_rows()


def by_name(answer) -> dict:
    return {server["name"]: server for server in answer.json()["servers"]}


def test_pages_and_json_need_a_staff_login(db: None) -> None:
    anonymous = Client()
    page = anonymous.get("/view/servers/")
    assert page.status_code == 302
    assert page["Location"] == "/admin/login/?next=/view/servers/"
    answer = anonymous.get(f"{API}/servers")
    assert answer.status_code == 403
    assert answer.json()["status"] == "error"
    assert "staff login" in answer.json()["msg"]
    plain = Client()
    plain.force_login(User.objects.create_user("plain", password="x"))  # not staff
    assert plain.get(f"{API}/servers").status_code == 403
    assert plain.get("/view/").status_code == 302


@override_settings(DIRECTOR_CONSOLE_PUBLIC=True)
def test_a_public_console_is_readable_without_a_login(db: None) -> None:
    anonymous = Client()
    assert anonymous.get("/view/").status_code == 200
    assert anonymous.get(f"{API}/overview").status_code == 200


def test_view_without_its_slash_goes_to_the_console(db: None) -> None:
    answer = Client().get("/view")
    assert answer.status_code in (301, 302)
    assert answer["Location"] == "/view/"


@pytest.mark.parametrize(
    "path",
    [
        "/view/",
        "/view/servers/",
        "/view/servers/origin/origin-a/",
        "/view/map/",
        "/view/namespaces/",
        "/view/why/",
    ],
)
def test_every_page_renders_its_frame_with_the_local_script(staff, federation, path) -> None:
    page = staff.get(path)
    assert page.status_code == 200
    html = page.content.decode()
    assert '<script src="/static/director/console/console.js">' in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # nothing remote
    assert staff.get("/static/director/console/console.js").status_code == 200


def test_the_servers_table_says_why_each_server_is_or_is_not_routable(staff, federation) -> None:
    servers = by_name(staff.get(f"{API}/servers"))
    assert servers["origin-a"]["state"] == "routable"
    assert servers["origin-a"]["colour"] == "ok"
    assert servers["origin-off"]["state"] == "disabled in the admin"
    assert servers["origin-off"]["colour"] == "off"
    assert servers["cache-down"]["state"] == "in downtime"
    assert servers["origin-a"]["adminUrl"].startswith("/admin/director/server/")
    assert servers["origin-a"]["healthTest"]["result"] == "not yet"


def test_an_ejected_server_shows_ejected_with_the_time_left(staff, federation) -> None:
    pool = presence.engine.pool_for(
        presence.target_for(registry.current().servers[("origin", "origin-a")])
    )
    for _ in range(registry.current().settings.ejection_consecutive_failures):
        pool.detector.record(fault=True, probe=False)
    server = by_name(staff.get(f"{API}/servers"))["origin-a"]
    assert server["state"] == "ejected"
    assert server["colour"] == "ejected"
    assert 0 < server["pool"]["ejectedFor"] <= registry.current().settings.ejection_base_time
    assert server["detail"].startswith("ejected, ") and "s left (1st time)" in server["detail"]
    overview = staff.get(f"{API}/overview").json()
    assert overview["counts"]["ejected"] == 1
    assert "server origin-a ejected" in overview["health"]["reasons"]


def test_filters_sorting_and_pages(staff, federation) -> None:
    caches = staff.get(f"{API}/servers?kind=cache").json()
    assert [server["name"] for server in caches["servers"]] == ["cache-b", "cache-down"]
    assert caches["matched"] == 2 and caches["total"] == 4
    unroutable = by_name(staff.get(f"{API}/servers?state=unroutable"))
    assert set(unroutable) == {"origin-off", "cache-down"}
    found = staff.get(f"{API}/servers?q=7004").json()
    assert [server["name"] for server in found["servers"]] == ["cache-b"]
    descending = staff.get(f"{API}/servers?sort=-name&size=3").json()
    assert [server["name"] for server in descending["servers"]] == [
        "origin-off",
        "origin-a",
        "cache-down",
    ]
    assert descending["pages"] == 2
    last = staff.get(f"{API}/servers?sort=-name&size=3&page=9").json()
    assert last["page"] == 2 and [server["name"] for server in last["servers"]] == ["cache-b"]
    for bad in ("kind=all", "state=sleepy", "sort=colour", "size=0", "page=0"):
        answer = staff.get(f"{API}/servers?{bad}")
        assert answer.status_code == 400, bad
        assert answer.json()["status"] == "error"


def test_a_server_page_holds_namespaces_downtimes_and_an_hour_of_minutes(staff, federation):
    page = staff.get(f"{API}/servers/cache/cache-down").json()
    assert (page["server"]["kind"], page["server"]["name"]) == ("cache", "cache-down")
    assert page["namespaces"] == ["/data"]
    assert [d["active"] for d in page["downtimes"]] == [True]
    assert len(page["series"]["redirects"]) == 59
    assert page["series"]["latencyMs"] == [None] * 59
    for unknown in ("cache/nobody", "origin/cache-down", "server/cache-down"):
        answer = staff.get(f"{API}/servers/{unknown}")
        assert answer.status_code == 404, unknown
        assert answer.json()["status"] == "error"
    assert staff.get("/view/servers/server/cache-down/").status_code == 404


def test_an_origin_and_a_cache_sharing_a_name_are_two_servers_everywhere(staff, db) -> None:
    """As in Pelican, an origin and a cache may share a name: two rows, two markers, two
    pages, two chips, each with its own state (the cache ejected, the origin not) and its
    own redirect count."""
    create_server(
        "twin", "origin", "http://127.0.0.1:7101", {"/twin": {}}, latitude=43.0, longitude=-89.0
    )
    create_server(
        "twin", "cache", "http://127.0.0.1:7102", {"/twin": {}}, latitude=41.8, longitude=-87.6
    )
    registry_rows.forget_rows()
    cache = ("cache", "twin")
    pool = presence.engine.pool_for(presence.target_for(registry.current().servers[cache]))
    for _ in range(registry.current().settings.ejection_consecutive_failures):
        pool.detector.record(fault=True, probe=False)
    pages = {"origin": "/view/servers/origin/twin/", "cache": "/view/servers/cache/twin/"}

    listed = staff.get(f"{API}/servers?q=twin").json()["servers"]
    assert {server["kind"]: server["detailUrl"] for server in listed} == pages
    assert {server["kind"]: server["state"] for server in listed} == {
        "origin": "routable",
        "cache": "ejected",
    }
    points = staff.get(f"{API}/map").json()["points"]
    assert {point["kind"]: point["detailUrl"] for point in points} == pages
    assert {point["kind"]: point["colour"] for point in points} == {
        "origin": "ok",
        "cache": "ejected",
    }
    for kind, url in (("origin", "http://127.0.0.1:7101"), ("cache", "http://127.0.0.1:7102")):
        page = staff.get(f"{API}/servers/{kind}/twin").json()
        assert (page["server"]["kind"], page["server"]["url"]) == (kind, url)
        assert page["server"]["state"] == ("ejected" if kind == "cache" else "routable")
        assert page["namespaces"] == ["/twin"]
        frame = staff.get(pages[kind]).content.decode()
        assert f'data-kind="{kind}" data-name="twin"' in frame
    namespace = staff.get(f"{API}/namespaces?q=twin").json()["namespaces"][0]
    assert [(chip["colour"], chip["detailUrl"]) for chip in namespace["origins"]] == [
        ("ok", pages["origin"])
    ]
    assert [(chip["colour"], chip["detailUrl"]) for chip in namespace["caches"]] == [
        ("ejected", pages["cache"])
    ]

    before = dict(traffic.server_redirects)
    assert staff.get("/api/v1.0/director/origin/twin/a").status_code == 307
    for _ in range(2):
        assert staff.get("/api/v1.0/director/object/twin/a").status_code == 307
    counted = {
        key: traffic.server_redirects.get(key, 0) - before.get(key, 0)
        for key in (("origin", "twin"), cache)
    }
    assert counted == {("origin", "twin"): 1, cache: 2}


def test_the_map_has_every_located_server_and_names_the_others(staff, federation) -> None:
    world = staff.get(f"{API}/map").json()
    located = {point["name"]: point for point in world["points"]}
    assert set(located) == {"origin-a", "cache-down"}
    assert located["cache-down"]["colour"] == "off"
    assert set(world["unlocated"]) == {"origin-off", "cache-b"}


def test_the_land_outline_is_drawn_from_the_shipped_file() -> None:
    path = land_path()
    assert path.startswith("M") and path.count("Z") > 100
    assert project(-180, 90) == (0.0, 0.0) and project(180, -90) == (360.0, 180.0)
    # No ring jumps across the map at the antimeridian (Chukotka, Fiji): a segment that
    # spans half the world is only the southern edge of the ring around the pole.
    for ring in path.split("Z")[:-1]:
        points = [tuple(map(float, point.split(","))) for point in ring[1:].split("L")]
        for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
            if abs(x1 - x2) >= 180:
                assert min(y1, y2) > 170, (x1, y1, x2, y2)  # south of 80 S


def test_namespaces_list_their_origins_caches_and_token_need(staff, federation) -> None:
    listing = staff.get(f"{API}/namespaces").json()
    spaces = {entry["path"]: entry for entry in listing["namespaces"]}
    assert [server["name"] for server in spaces["/data"]["origins"]] == ["origin-a"]
    assert {server["name"]: server["colour"] for server in spaces["/data"]["caches"]} == {
        "cache-down": "off"
    }
    assert spaces["/data"]["requireToken"] is False
    assert spaces["/private"]["requireToken"] is True
    assert staff.get(f"{API}/namespaces?q=priv").json()["matched"] == 1


def test_explain_answers_in_the_live_process_as_a_redirect_does(client, federation) -> None:
    """Public, like X-Pelican-Debug: the same first server as the redirect, for a client
    that declares where it is."""
    redirect = client.get(
        "/api/v1.0/director/origin/data/x", HTTP_X_PELICAN_COORDINATE="lat=43.0,long=-89.0"
    )
    explained = client.get(f"{API}/explain?path=/data/x&coordinate=43.0,-89.0&origin=true").json()
    assert redirect.status_code == 307
    assert explained["status"] == 307
    assert explained["location"] == redirect["Location"]
    assert explained["servers"][0]["rank"] == 1
    assert list(explained) == [
        "worker",
        "path",
        "route",
        "client",
        "sortMethod",
        "namespace",
        "status",
        "location",
        "message",
        "servers",
    ]
    names = [server["name"] for server in explained["servers"]]
    assert set(names) == {"origin-a", "origin-off", "cache-down", "cache-b"}
    reasons = {server["name"]: server["excluded"] for server in explained["servers"]}
    assert reasons["origin-off"] == "disabled in the admin"
    assert reasons["cache-down"] == "in downtime"
    for bad in ("path=relative", "path=/x&client_ip=nope", "path=/x&coordinate=91,0"):
        answer = client.get(f"{API}/explain?{bad}")
        assert answer.status_code == 400, bad
