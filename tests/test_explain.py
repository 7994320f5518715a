"""``manage.py explain``: every server, its distance and weights, its rank or the reason
it was left out, as a table and as JSON; bad input exits 2, an error answer exits 1."""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from collections.abc import Iterator

import gevent
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from helpers import configure_director, create_server

from director import locate, registry
from director.models import Downtime, GeoIPOverride

LINCOLN = "40.81,-96.70"
MADISON = (43.0731, -89.4012)
CHICAGO = (41.8781, -87.6298)
SAN_DIEGO = (32.7157, -117.1611)
# From (40.81, -96.70), haversine with R = 3960 mi, times 1.609344 km/mi:
#   Madison   406.3425 mi = 653.9448 km -> "653.9"; weight 2^(-406.3425/200) = 0.244565
#   Chicago   476.1596 mi = 766.3046 km -> "766.3"; weight 0.192003
#   San Diego 1259.3000 mi = 2026.6470 km -> "2026.6"; weight 0.012722
MADISON_KM = 653.9
CHICAGO_KM = 766.3
SAN_DIEGO_KM = 2026.6

REASONS = {
    "disabled": "disabled in the admin",
    "expired": "advertisement expired",
    "maintenance": "in downtime",
    "elsewhere": "namespace: serves no namespace that wins for this path",
    "failing": "status critical",
    "writer": "capability: needs Reads OR PublicReads",
}


def explain(*args: str) -> str:
    """In this process (``--local``): a director another test run serves on the default
    address must not answer for the test's registry."""
    out = io.StringIO()
    call_command("explain", "--local", *args, stdout=out)
    return out.getvalue()


def failed_explain(*args: str) -> tuple[CommandError, str]:
    out = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("explain", "--local", *args, stdout=out)
    return raised.value, out.getvalue()


def no_redirect(*args: str) -> str:
    """An answer that is not a redirect: printed as any answer, then exit status 1."""
    out = io.StringIO()
    with pytest.raises(SystemExit) as raised:
        call_command("explain", "--local", *args, stdout=out)
    assert raised.value.code == 1
    return out.getvalue()


def row(output: str, name: str) -> str:
    rows = [line for line in output.splitlines() if line.split()[:1] == [name]]
    assert len(rows) == 1, (name, output)
    return rows[0]


@pytest.fixture(autouse=True)
def fresh_locator() -> Iterator[None]:
    locate.locator.cache_clear()
    locate.geoip_database.cache_clear()
    yield
    locate.locator.cache_clear()
    locate.geoip_database.cache_clear()


@pytest.fixture
def federation(db) -> None:
    """One origin that reads and one that only writes; caches in three cities; and one
    cache for each reason a server can be left out."""
    configure_director()
    now = timezone.now()
    create_server(
        "origin", "origin", "https://192.0.2.1:8443", latitude=45.0, longitude=-93.0, rebuild=False
    )
    create_server(
        "writer",
        "origin",
        "https://192.0.2.2:8443",
        {"/test": {"public_reads": False, "reads": False, "writes": True}},
        public_reads=False,
        reads=False,
        writes=True,
        latitude=45.0,
        longitude=-93.0,
        rebuild=False,
    )
    for number, (name, (latitude, longitude)) in enumerate(
        {"madison": MADISON, "chicago": CHICAGO, "san-diego": SAN_DIEGO}.items(), start=10
    ):
        create_server(
            name,
            "cache",
            f"https://192.0.2.{number}:8443",
            latitude=latitude,
            longitude=longitude,
            rebuild=False,
        )
    near = {"latitude": MADISON[0], "longitude": MADISON[1], "rebuild": False}
    create_server("disabled", "cache", "https://192.0.2.20:8443", enabled=False, **near)
    create_server(
        "expired",
        "cache",
        "https://192.0.2.21:8443",
        expires_at=now - dt.timedelta(minutes=1),
        **near,
    )
    maintenance = create_server("maintenance", "cache", "https://192.0.2.22:8443", **near)
    Downtime.objects.create(
        server=maintenance,
        starts_at=now - dt.timedelta(hours=1),
        ends_at=None,
        description="disk swap",
    )
    create_server("elsewhere", "cache", "https://192.0.2.23:8443", {"/other": {}}, **near)
    create_server("failing", "cache", "https://192.0.2.24:8443", status="critical", **near)
    registry.rebuild()


# --- the table ---------------------------------------------------------------------------


def test_the_table_ranks_the_nearest_caches_and_shows_their_distance_in_km(federation):
    output = explain("/test/data/file.txt", "--coordinate", LINCOLN)

    assert row(output, "madison").split() == [
        "madison",
        "cache",
        f"{MADISON_KM}",
        "0.244565",
        "1",
        "1",
        "0.244565",
        "#1",
    ]
    assert row(output, "chicago").split()[2:4] == [f"{CHICAGO_KM}", "0.192003"]
    assert row(output, "chicago").endswith("#2")
    assert row(output, "san-diego").split()[2] == f"{SAN_DIEGO_KM}"
    assert row(output, "san-diego").endswith("#3")
    assert output.splitlines()[-1] == (
        "answer: 307 Location: https://192.0.2.10:8443/test/data/file.txt"
    )


def test_the_table_gives_the_reason_for_every_server_left_out(federation):
    output = explain("/test/data/file.txt", "--coordinate", LINCOLN)

    for name, reason in REASONS.items():
        assert row(output, name).endswith(reason), row(output, name)
    assert row(output, "origin").endswith("origin: the object route sends clients to caches")


def test_the_table_lists_every_server_once_and_describes_the_client(federation):
    output = explain("/test/data/file.txt", "--coordinate", LINCOLN)
    lines = output.splitlines()

    assert lines[:5] == [
        "path:      /test/data/file.txt (object route)",
        "namespace: /test",
        "client:    40.8100,-96.7000 (declared)",
        "sort:      distance",
        "asked:     this process",
    ]
    assert lines[6].split() == [
        "name",
        "kind",
        "km",
        "distance",
        "status",
        "avail",
        "total",
        "stat",
        "rank",
        "/",
        "reason",
    ]
    listed = [line.split()[0] for line in lines[7:-2]]
    assert sorted(listed) == sorted(
        ["origin", "writer", "madison", "chicago", "san-diego", *REASONS.keys() - {"writer"}]
    )
    # The answer's order first, then the rest by kind and name.
    assert listed[:3] == ["madison", "chicago", "san-diego"]
    rest = [line.split()[:2] for line in lines[10:-2]]
    assert rest == sorted(rest, key=lambda cells: (cells[1], cells[0]))


def test_the_origin_route_ranks_origins_and_names_the_missing_capability(federation):
    output = explain("/test/data/file.txt", "--coordinate", LINCOLN, "--origin")

    assert row(output, "origin").endswith("#1")
    assert row(output, "writer").endswith("capability: needs Reads OR PublicReads")
    assert row(output, "madison").endswith("cache: the origin route sends clients to origins")
    assert row(output, "disabled").endswith("disabled in the admin")
    assert row(output, "maintenance").endswith("in downtime")
    assert output.splitlines()[-1] == (
        "answer: 307 Location: https://192.0.2.1:8443/test/data/file.txt"
    )


def test_a_downtime_that_has_ended_leaves_the_server_in_rotation(federation):
    Downtime.objects.filter(server__name="maintenance").update(
        ends_at=timezone.now() - dt.timedelta(minutes=1)
    )
    registry.rebuild()

    output = explain("/test/data/file.txt", "--coordinate", LINCOLN)

    # It shares Madison's coordinate; the stable sort keeps name order (madison first).
    assert row(output, "maintenance").endswith("#2")


# --- JSON ------------------------------------------------------------------------------------


def test_json_output_holds_the_client_the_answer_and_every_server(federation):
    document = json.loads(explain("/test/data/file.txt", "--coordinate", LINCOLN, "--json"))

    assert document["path"] == "/test/data/file.txt"
    assert document["route"] == "object"
    assert document["client"] == {
        "ip": "",
        "latitude": 40.81,
        "longitude": -96.7,
        "source": "declared",
    }
    assert document["sortMethod"] == "distance"
    assert document["namespace"] == "/test"
    assert document["status"] == 307
    assert document["location"] == "https://192.0.2.10:8443/test/data/file.txt"
    assert document["message"] == ""
    servers = {line["name"]: line for line in document["servers"]}
    assert servers["madison"] == {
        "name": "madison",
        "kind": "cache",
        "url": "https://192.0.2.10:8443",
        "distanceKm": MADISON_KM,
        "weights": {
            "distance": 0.244565,
            "ioLoad": 1.0,
            "status": 1.0,
            "availability": 1.0,
            "total": 0.244565,
        },
        "stat": "",
        "rank": 1,
        "excluded": "",
    }
    assert [servers[n]["rank"] for n in ("madison", "chicago", "san-diego")] == [1, 2, 3]
    for name, reason in REASONS.items():
        assert servers[name]["rank"] is None
        assert servers[name]["excluded"] == reason
    assert servers["failing"]["weights"] is None
    assert list(document) == [*EXPLANATION_KEYS, "asked"]
    assert list(document["client"]) == ["ip", "latitude", "longitude", "source"]
    assert list(servers["madison"]) == list(servers["failing"]) == list(SERVER_KEYS)


EXPLANATION_KEYS = (
    "path",
    "route",
    "client",
    "sortMethod",
    "namespace",
    "status",
    "location",
    "message",
    "servers",
)
SERVER_KEYS = ("name", "kind", "url", "distanceKm", "weights", "stat", "rank", "excluded")


def test_a_client_address_inside_an_override_is_placed_by_the_override(federation):
    GeoIPOverride.objects.create(network="198.51.100.0/24", latitude=32.7, longitude=-117.2)
    registry.rebuild()

    document = json.loads(explain("/test/x", "--client-ip", "198.51.100.23", "--json"))

    assert document["client"] == {
        "ip": "198.51.100.23",
        "latitude": 32.7,
        "longitude": -117.2,
        "source": "override",
    }
    assert [line["name"] for line in document["servers"] if line["rank"] == 1] == ["san-diego"]


def test_a_client_address_no_source_knows_gets_a_random_point(federation):
    document = json.loads(explain("/test/x", "--client-ip", "2001:db8::77", "--json"))

    assert document["client"]["source"] == "random"
    assert document["status"] == 307


def test_the_stat_outcome_of_each_cache_is_shown_under_the_adaptive_sort(db, file_servers):
    configure_director(sort_method="adaptive", stat_timeout=1.0, redirect_timeout=2.0)
    holder = file_servers({"/test/x": b"abc"}, upstream_director="http://127.0.0.1:9")
    empty = file_servers()
    create_server("origin", "origin", "https://192.0.2.1:8443", latitude=45.0, longitude=-93.0)
    for name, cache in (("x-holder", holder), ("x-empty", empty)):
        create_server(name, "cache", cache.url, latitude=MADISON[0], longitude=MADISON[1])

    # Asked until both answers are known (20 s at most): the first run returns at the
    # first "present", the other HEAD lands in the stat cache a little later.
    give_up = time.monotonic() + 20.0
    while True:
        document = json.loads(explain("/test/x", "--coordinate", LINCOLN, "--json"))
        servers = {line["name"]: line for line in document["servers"]}
        if servers["x-empty"]["stat"] == "absent" or time.monotonic() > give_up:
            break
        gevent.sleep(0.05)

    assert (servers["x-holder"]["stat"], servers["x-empty"]["stat"]) == ("present", "absent")
    assert document["sortMethod"] == "adaptive"
    assert servers["x-holder"]["weights"]["availability"] == 2.0
    assert servers["x-empty"]["weights"]["availability"] == 0.5
    assert sorted(servers[name]["rank"] for name in ("x-holder", "x-empty")) == [1, 2]


# --- bad input and error answers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["test/file.txt"], "The path must start with '/'"),
        (["/test/../../etc/passwd"], "escapes the root with '..'"),
        (["/test/\x00file"], "control character"),
        (["/test/x", "--client-ip", "999.1.1.1"], "is not an IP address"),
        (["/test/x", "--client-ip", "director.example.org"], "is not an IP address"),
        (["/test/x", "--coordinate", "abc"], "--coordinate"),
        (["/test/x", "--coordinate", "40.81"], "expected LAT,LONG"),
        (["/test/x", "--coordinate", "40.81,-96.70,3"], "expected LAT,LONG"),
        (["/test/x", "--coordinate", "north,west"], "--coordinate"),
        (["/test/x", "--coordinate", "91,0"], "latitude must be within [-90, 90]"),
        (["/test/x", "--coordinate", "0,-181"], "longitude within [-180, 180]"),
        (["/test/x", "--coordinate", "nan,0"], "latitude must be within"),
    ],
)
def test_bad_input_is_refused_with_exit_status_2(federation, args, message):
    error, output = failed_explain(*args)

    assert error.returncode == 2
    assert message in str(error)
    assert output == ""


def test_an_error_answer_is_printed_then_exits_with_status_1(federation):
    output = no_redirect("/nothing/here", "--coordinate", LINCOLN)

    assert "namespace: (none)" in output
    assert output.rstrip().splitlines()[-1] == (
        "answer: 404 No sources found for the requested path /nothing/here."
    )
    # Every server is still accounted for.
    assert row(output, "madison").endswith("namespace: serves no namespace that wins for this path")


def test_an_error_answer_in_json_exits_with_status_1_too(federation):
    output = no_redirect("/nothing/here", "--coordinate", LINCOLN, "--json")

    document = json.loads(output)
    assert document["status"] == 404
    assert document["location"] == ""
    assert document["message"] == "No sources found for the requested path /nothing/here."
