"""The stat path through real redirects, the front door, /metrics, health, pools, commands."""

from __future__ import annotations

import json
import time

import gevent
import pytest
import requests
from django.core.management import CommandError, call_command
from helpers import caps, namespace_ad, settle, wait_until

from director import __version__, presence
from director.models import Server
from director.ops.metrics import INFLIGHT

PROTECTED = caps(Read=True)
FAST = {
    "stat_timeout": 0.3,
    "redirect_timeout": 0.6,
    "stat_concurrency_limit": 5,
    "stat_max_waiters": 2,
}


@pytest.fixture
def two_origins(live_director, file_servers, director_settings):
    director_settings(**FAST)
    first = file_servers({"/data/a.txt": b"A" * 10}, name="first")
    second = file_servers({"/data/a.txt": b"A" * 10, "/data/b.txt": b"B"}, name="second")
    live_director.register("first", "origin", first.url, namespaces=[namespace_ad("/data")])
    live_director.register("second", "origin", second.url, namespaces=[namespace_ad("/data")])
    return first, second


def test_the_origin_that_holds_the_object_is_ranked_first(live_director, two_origins):
    first, second = two_origins
    answer = live_director.get("/api/v1.0/director/origin/data/b.txt")
    assert answer.status_code == 307
    assert answer.headers["Location"] == f"{second.url}/data/b.txt"
    # The fan-out returns at the first "present": "first" is dropped if its 404 came in
    # by then, kept as unknown (after the holder) if not.
    assert answer.headers["Link"].startswith(
        f'<{second.url}/data/b.txt>; rel="duplicate"; pri=1; depth=1'
    )


def test_stat_heads_carry_the_director_agent_digest_request_and_client_token(
    live_director, two_origins
):
    first, _ = two_origins
    live_director.get(
        "/api/v1.0/director/origin/data/a.txt", headers={"Authorization": "Bearer tok123"}
    )
    # Both hold it: the answer may come with "second", while the HEAD to "first" is in
    # flight (seen on a loaded machine): wait for every stat to finish.
    settle(presence.engine, timeout=10.0)
    heads = [seen for seen in first.seen_headers if seen["method"] == "HEAD"]
    assert heads, "no stat was sent"
    assert heads[0]["User-Agent"] == f"pelican-director/{__version__}"
    assert heads[0]["Want-Digest"] == "crc32c"
    assert heads[0]["Authorization"] == "Bearer tok123"


def test_an_object_no_origin_holds_is_a_404_with_the_pelican_message(live_director, two_origins):
    answer = live_director.get("/api/v1.0/director/origin/data/none.txt")
    assert answer.status_code == 404
    body = answer.json()
    assert body["status"] == "error"
    assert body["msg"].startswith("No sources reported possession of the object /data/none.txt")
    assert "Request ID: " in body["msg"]


def test_stat_answers_are_cached_so_a_second_redirect_sends_no_head(live_director, two_origins):
    first, second = two_origins
    live_director.get("/api/v1.0/director/origin/data/b.txt")
    # The answer came with the first present server; the other HEAD may be in flight.
    settle(presence.engine, timeout=10.0)
    heads = first.count("HEAD") + second.count("HEAD")
    live_director.get("/api/v1.0/director/origin/data/b.txt")
    assert first.count("HEAD") + second.count("HEAD") == heads


def test_an_origin_that_denies_the_stat_is_kept_after_the_holder(live_director, two_origins):
    first, second = two_origins
    first.behaviour.required_token = "only-this"
    answer = live_director.get("/api/v1.0/director/origin/data/a.txt")
    assert answer.status_code == 307
    assert answer.headers["Location"] == f"{second.url}/data/a.txt"
    assert f"<{first.url}/data/a.txt>" in answer.headers["Link"]


def test_a_protected_namespace_is_not_statted_without_a_token(
    live_director, file_servers, director_settings
):
    director_settings(**FAST)
    origins = [file_servers(name=f"p{i}") for i in range(2)]
    for index, origin in enumerate(origins):
        live_director.register(
            f"p{index}", "origin", origin.url, namespaces=[namespace_ad("/private", Caps=PROTECTED)]
        )
    answer = live_director.get("/api/v1.0/director/origin/private/x")
    assert answer.status_code == 307
    assert sum(origin.count("HEAD") for origin in origins) == 0


def test_a_timeout_never_becomes_a_404(live_director, file_servers, director_settings):
    director_settings(**FAST)
    hanging = [file_servers(name=f"h{i}") for i in range(2)]
    for index, origin in enumerate(hanging):
        origin.behaviour.hang = True
        origin.behaviour.hang_seconds = 2
        live_director.register(
            f"h{index}", "origin", origin.url, namespaces=[namespace_ad("/data")]
        )
    started = time.monotonic()
    answer = live_director.get("/api/v1.0/director/origin/data/a.txt")
    assert time.monotonic() - started < FAST["redirect_timeout"] + 0.3
    assert answer.status_code == 307


def test_past_the_inflight_limit_the_director_sheds_with_429_and_health_says_overloaded(
    live_director, file_servers, director_settings
):
    director_settings(
        stat_timeout=2.0, redirect_timeout=2.4, max_inflight_requests=2, stat_concurrency_limit=5
    )
    for index in range(2):
        origin = file_servers(name=f"slow{index}")
        origin.behaviour.hang = True
        origin.behaviour.hang_seconds = 5
        live_director.register(
            f"slow{index}", "origin", origin.url, namespaces=[namespace_ad("/data")]
        )
    holders = [
        gevent.spawn(live_director.get, f"/api/v1.0/director/origin/data/{i}") for i in range(2)
    ]
    wait_until(lambda: INFLIGHT.count == 2, 2.0, "both holders waiting on their stats")
    shed = live_director.get("/api/v1.0/director/origin/data/third")
    health = requests.get(f"{live_director.url}/api/v1.0/health", timeout=5)
    gevent.joinall(holders, timeout=5)

    assert shed.status_code == 429
    assert shed.headers["Retry-After"] == "1"
    assert shed.json()["status"] == "error"
    assert health.status_code == 503
    assert health.json()["status"] == "overloaded"
    assert [holder.value.status_code for holder in holders] == [307, 307]


def test_health_is_ok_when_idle_and_names_an_ejected_server(
    live_director, file_servers, director_settings
):
    director_settings(**FAST, ejection_consecutive_failures=2)
    good = file_servers({"/data/a": b"a"}, name="good")
    bad = file_servers(name="bad")
    bad.behaviour.status = 503
    live_director.register("good", "origin", good.url, namespaces=[namespace_ad("/data")])
    live_director.register("bad", "origin", bad.url, namespaces=[namespace_ad("/data")])
    health = requests.get(f"{live_director.url}/api/v1.0/health", timeout=5)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["ejectedServers"] == []

    for index in range(3):
        live_director.get(f"/api/v1.0/director/origin/data/miss{index}")
    health = requests.get(f"{live_director.url}/api/v1.0/health", timeout=5).json()
    assert health["status"] == "degraded"
    assert health["ejectedServers"] == ["bad"]
    assert isinstance(health["greenlets"], int) and health["greenlets"] > 0
    pools = requests.get(f"{live_director.url}/api/v1.0/director_ui/stat/pools", timeout=5).json()
    bad_pool = next(pool for pool in pools if pool["name"] == "bad")
    assert bad_pool["ejectedUntil"] is not None
    assert bad_pool["outcomes"]["error"] == 2
    assert bad_pool["rejections"]["ejected"] == 1


def test_metrics_expose_the_stat_redirect_and_process_series(live_director, two_origins):
    live_director.get("/api/v1.0/director/origin/data/b.txt")
    text = requests.get(f"{live_director.url}/metrics", timeout=5).text
    for series in (
        'pelican_director_stat_total{cached_result="false",result="present",'
        'server_name="second",server_type="origin"} 1.0',
        'pelican_director_stat_active{server_name="first",server_type="origin"}',
        'pelican_director_stat_waiting{server_name="second",server_type="origin"}',
        'pelican_director_server_ejected{server_name="first",server_type="origin"} 0.0',
        'pelican_director_redirects_total{destination="origin",status_code="307"}',
        'pelican_director_request_duration_seconds_bucket{le="0.001",route="origin"}',
        "pelican_director_inflight_requests ",
        "pelican_director_greenlets ",
        "pelican_director_loop_lag_seconds ",
    ):
        assert series in text, series


# --- manage.py stat ------------------------------------------------------------------------


def test_stat_command_prints_every_candidate_and_the_redirect(live_director, two_origins, capsys):
    first, second = two_origins
    call_command("stat", "/data/a.txt")
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "name", "kind", "outcome", "status", "ms", "size", "checksum", "age"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:3]}
    assert rows["first"][1:4] == ["origin", "present", "200"]
    assert rows["first"][5:7] == ["10", "crc32c=1f6b9e4c"] or rows["first"][5] == "10"
    assert f"origin redirect: 307 Location: {first.url}/data/a.txt" in out
    assert "object redirect: 404 No caches can fulfill this request" in out


def test_stat_command_json_and_exit_status_one_when_nobody_has_it(
    live_director, two_origins, capsys
):
    with pytest.raises(SystemExit) as raised:  # an answer, not an error: no traceback
        call_command("stat", "/data/none.txt", "--json")
    assert raised.value.code == 1
    document = json.loads(capsys.readouterr().out)
    assert [row["outcome"] for row in document["servers"]] == ["absent", "absent"]
    assert [row["name"] for row in document["servers"]] == ["first", "second"]
    assert {row["kind"] for row in document["servers"]} == {"origin"}
    assert document["redirects"]["origin"]["status"] == 404
    assert document["redirects"]["origin"]["message"].startswith("No sources reported possession")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["relative/path"], "must start with '/'"),
        (["/a/../../etc"], "escapes the root"),
        (["/data/a.txt", "--timeout", "0"], "--timeout must be in"),
    ],
)
def test_stat_command_refuses_bad_input_with_exit_status_two(db, args, message):
    with pytest.raises(CommandError) as raised:
        call_command("stat", *args)
    assert raised.value.returncode == 2
    assert message in str(raised.value)


# --- manage.py statpools -------------------------------------------------------------------


def test_statpools_prints_every_server_with_its_state(live_director, two_origins, capsys):
    live_director.get("/api/v1.0/director/origin/data/b.txt")
    Server.objects.filter(name="second").update(enabled=False)
    call_command("statpools", "--director", live_director.url)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:6] == ["name", "kind", "state", "limit", "active", "waiting"]
    assert [line.split()[0] for line in lines[1:]] == ["first", "second"]
    assert lines[1].split()[1:4] == ["origin", "routable", "5"]
    assert "s ago" in lines[1]  # the last advertisement, relative
    # Disabled in the admin (the snapshot follows within a second; the table reads the rows).
    assert "disabled in the admin" in lines[2]


def test_explain_asks_the_running_director(live_director, two_origins, capsys):
    first, second = two_origins
    live_director.get("/api/v1.0/director/origin/data/b.txt")
    call_command("explain", "/data/b.txt", "--origin", "--director", live_director.url)
    out = capsys.readouterr().out
    assert f"asked:     {live_director.url} (process " in out
    assert f"answer: 307 Location: {second.url}/data/b.txt" in out
    table = out.split("\n\n")[1].splitlines()
    assert table[0].split()[:2] == ["name", "kind"]
    assert table[1].split()[0] == "second" and table[1].rstrip().endswith("#1")


def test_explain_says_no_redirect_with_exit_status_one(live_director, two_origins, capsys):
    with pytest.raises(SystemExit) as raised:
        call_command("explain", "/nowhere/x", "--director", live_director.url, "--json")
    assert raised.value.code == 1
    assert json.loads(capsys.readouterr().out)["status"] == 404


def test_explain_with_a_named_director_that_does_not_answer_exits_1(db):
    with pytest.raises(CommandError) as raised:
        call_command("explain", "/x", "--director", "http://127.0.0.1:9")
    assert raised.value.returncode == 1
    assert "Cannot reach" in str(raised.value)


def test_statpools_watch_refreshes_count_times_and_json_is_the_raw_answer(
    live_director, two_origins, capsys
):
    call_command("statpools", "--director", live_director.url, "--watch", "0.05", "--count", "2")
    out = capsys.readouterr().out
    assert out.count(live_director.url) == 2
    call_command("statpools", "--director", live_director.url, "--json")
    document = json.loads(capsys.readouterr().out)
    assert {server["name"] for server in document["servers"]} == {"first", "second"}


def test_statpools_reports_an_unreachable_director_and_bad_input(db):
    with pytest.raises(CommandError) as unreachable:
        call_command("statpools", "--director", "http://127.0.0.1:9")
    assert unreachable.value.returncode == 1
    assert "Cannot reach" in str(unreachable.value)
    with pytest.raises(CommandError) as bad:
        call_command("statpools", "--director", "not a url")
    assert bad.value.returncode == 2


def test_health_names_an_ejected_server_with_its_kind_when_a_cache_shares_its_name(
    live_director, file_servers, director_settings
):
    director_settings(**FAST, ejection_consecutive_failures=2)
    good = file_servers({"/data/a": b"a"}, name="good")
    bad = file_servers(name="bad")
    bad.behaviour.status = 503
    live_director.register("good", "origin", good.url, namespaces=[namespace_ad("/data")])
    live_director.register("bad", "origin", bad.url, namespaces=[namespace_ad("/data")])
    live_director.register("bad", "cache", good.url, namespaces=[namespace_ad("/data")])

    for index in range(3):
        live_director.get(f"/api/v1.0/director/origin/data/miss{index}")
    live_director.get("/api/v1.0/director/object/data/a")  # the cache "bad" is statted too
    health = requests.get(f"{live_director.url}/api/v1.0/health", timeout=5).json()

    assert health["ejectedServers"] == ["bad (origin)"]
    assert "server bad (origin) ejected" in health["reasons"]
