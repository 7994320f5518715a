"""The ``registry-scale`` scenario: what advertisements cost as the federation grows.

For each federation size N (origins with 10 namespaces each) and each database (SQLite,
and PostgreSQL when one answers), on a fresh director (``manage.py serve``):

1. register the N origins through the API, and note the director's RSS before and after
   (the routing snapshot's memory);
2. idle: an open-loop client asks for redirects to all of them for ``duration`` seconds;
3. ads flowing: the same client, while every origin re-advertises once a minute, spread
   evenly (N/60 ads per second, unchanged ads, as Pelican servers send them);
4. cost of one re-advertisement: with no other load, a few hundred unchanged ads one
   after the other, director CPU seconds per ad and their latency;
5. the largest ad allowed (1,000 namespaces) sent for origin 0: new, unchanged, changed
   and unchanged again, while redirects go to the other origins; the worst redirect
   latency meanwhile says how long the ad held the event loop at a stretch.

Targets (one process): redirect p99 while ads flow <= max(2 x idle p99, idle p99 + 10 ms);
ad p99 <= 50 ms; CPU per unchanged re-advertisement within 2x between the smallest and the
largest N; 0 answers but 307; the worst redirect during the largest ads <= 50 ms. All in
one run, so the ratios are this machine's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import requests

from bench.harness import REPO, WORK, Director, _proc_usage
from bench.loadgen import OpenLoop

NAMESPACES = 10
REDIRECT_RATE = 100.0  # redirects per second, in both phases
BURST_ADS = 200
CAPS = {"PublicRead": True, "Read": True}
SETTINGS = {"startup_grace": 0.0, "health_test_interval": 0.0}
POSTGRES_ADMIN = os.environ.get(
    "DIRECTOR_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres"
)


LARGEST_AD = 1000  # namespaces: the most an ad may carry (director.wire.ads.MAX_NAMESPACES)
LARGEST_AD_WORST_REDIRECT = 0.050


def ad_for(index: int, paths: list[str] | None = None) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    if paths is None:
        paths = [f"/scale/{index}/{number}" for number in range(NAMESPACES)]
    return {
        "name": f"o-{index}",
        "registry-prefix": f"/origins/o-{index}",
        "data-url": f"http://127.0.0.1:9/o-{index}",  # never contacted: no stat, one origin
        "capabilities": CAPS,
        "namespaces": [{"Caps": CAPS, "path": path} for path in paths],
        "status": "ok",
        "version": "7.20.0",
        "now": now.isoformat(),
        "expiry": (now + dt.timedelta(minutes=10)).isoformat(),
    }


class Advertiser:
    """Sends ads over one keep-alive session and records their latencies."""

    def __init__(self, director: Director, tokens: dict[str, str]) -> None:
        self.url = f"{director.url}/api/v1.0/director/registerOrigin"
        self.tokens = tokens
        self.session = requests.Session()
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def send(self, index: int) -> None:
        started = time.monotonic()
        answer = self.session.post(
            self.url,
            json=ad_for(index),
            headers={
                "Authorization": f"Bearer {self.tokens[f'/origins/o-{index}']}",
                "User-Agent": "pelican-origin/7.20.0",
            },
            timeout=30,
        )
        self.latencies.append(time.monotonic() - started)
        if answer.status_code != 200:
            self.failures.append(f"{answer.status_code} {answer.text[:120]}")

    def every_minute(self, count: int, duration: float) -> None:
        """Each of ``count`` origins once a minute, spread evenly, for ``duration`` s."""
        interval = 60.0 / count
        start = time.monotonic()
        sent = 0
        while True:
            due = start + sent * interval
            if due - start >= duration:
                return
            gevent.sleep(max(0.0, due - time.monotonic()))
            self.send(sent % count)
            sent += 1


def _issue_tokens(director: Director, count: int) -> dict[str, str]:
    path = Path(WORK) / director.name / "tokens.json"
    script = (
        "import json\n"
        "from director.models import RegistrationToken\n"
        f"tokens = {{f'/origins/o-{{i}}': RegistrationToken.issue(f'/origins/o-{{i}}')[1]"
        f" for i in range({count})}}\n"
        f"open({str(path)!r}, 'w').write(json.dumps(tokens))\n"
    )
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=REPO,
        env=director.env,
        check=True,
    )
    tokens: dict[str, str] = json.loads(path.read_text())
    return tokens


def _postgres_database() -> str | None:
    """A new PostgreSQL database for one run, or None when no server answers."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN, connect_timeout=3, autocommit=True) as admin:
            name = f"director_bench_{secrets.token_hex(4)}"
            admin.execute(f'CREATE DATABASE "{name}"')
    except Exception:  # no server, or no right to create: the run says so
        return None
    return POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def _drop_postgres(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN, connect_timeout=3, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(fraction * len(ordered) + 0.999999) - 1))]


def _redirects(director: Director, count: int, duration: float, first: int = 0) -> dict[str, Any]:
    """Redirects to origins ``first`` .. ``count - 1``, at REDIRECT_RATE, for ``duration``."""
    rng = random.Random(count)

    def path_for(index: int) -> str:
        origin = rng.randrange(first, count)
        return f"/api/v1.0/director/origin/scale/{origin}/{rng.randrange(NAMESPACES)}/f{index}"

    load = OpenLoop("127.0.0.1", director.port).run(REDIRECT_RATE, duration, path_for)
    latencies = [record[1] for record in load.records]
    statuses: dict[str, int] = {}
    for record in load.records:
        key = str(record[2]) if not record[3] else record[3]
        statuses[key] = statuses.get(key, 0) + 1
    return {
        "p50": _percentile(latencies, 0.5),
        "p99": _percentile(latencies, 0.99),
        "max": max(latencies, default=float("nan")),
        "statuses": statuses,
        "achieved_rate": round(load.achieved_rate, 1),
    }


def _largest_ads(director: Director, advertiser: Advertiser) -> dict[str, Any]:
    """Step 5: four ads of LARGEST_AD namespaces for origin 0 (each body serialised before
    the load starts) while redirects go to the other origins."""
    bodies = [
        json.dumps(ad_for(0, [f"/largest/{tag}/{number}" for number in range(LARGEST_AD)]))
        for tag in ("a", "a", "b", "b")
    ]
    latencies: list[float] = []
    statuses: list[int] = []

    def send_all() -> None:
        for body in bodies:
            gevent.sleep(1.0)
            started = time.monotonic()
            answer = advertiser.session.post(
                advertiser.url,
                data=body,
                headers={
                    "Authorization": f"Bearer {advertiser.tokens['/origins/o-0']}",
                    "Content-Type": "application/json",
                    "User-Agent": "pelican-origin/7.20.0",
                },
                timeout=30,
            )
            latencies.append(time.monotonic() - started)
            statuses.append(answer.status_code)

    sender = gevent.spawn(send_all)
    redirects = _redirects(director, len(advertiser.tokens), 6.0, first=1)
    sender.join(timeout=60)
    return {
        "namespaces": LARGEST_AD,
        "ad_seconds": [round(value, 4) for value in latencies],  # new, same, changed, same
        "ad_statuses": statuses,
        "redirects": redirects,
    }


def one_size(count: int, database: str, duration: float) -> dict[str, Any]:
    """Steps 1-5 of the module docstring for one N and one database."""
    database_url = ""
    if database == "postgresql":
        database_url = _postgres_database() or ""
        if not database_url:
            return {"skipped": f"no PostgreSQL server answers at {POSTGRES_ADMIN}"}
    name = f"registry-scale-{database}-{count}"
    try:
        with Director(name, SETTINGS, [], database_url=database_url) as director:
            tokens = _issue_tokens(director, count)
            advertiser = Advertiser(director, tokens)
            _, rss_before = _proc_usage(director.pids())
            for index in range(count):
                advertiser.send(index)
            gevent.sleep(1.0)
            _, rss_after = _proc_usage(director.pids())
            registered = len(advertiser.latencies)
            advertiser.latencies.clear()

            cpu_start, _ = _proc_usage(director.pids())
            idle = _redirects(director, count, duration)
            cpu_idle, _ = _proc_usage(director.pids())

            sender = gevent.spawn(advertiser.every_minute, count, duration)
            flowing = _redirects(director, count, duration)
            sender.join(timeout=duration + 30)
            cpu_flowing, _ = _proc_usage(director.pids())
            flowing_ads = list(advertiser.latencies)
            advertiser.latencies.clear()

            cpu_before_burst, _ = _proc_usage(director.pids())
            for number in range(BURST_ADS):
                advertiser.send(number % count)
            cpu_after_burst, _ = _proc_usage(director.pids())
            burst = list(advertiser.latencies)
            failures = advertiser.failures
            largest = _largest_ads(director, advertiser)
    finally:
        if database_url:
            _drop_postgres(database_url)
    return {
        "origins": count,
        "namespaces": count * NAMESPACES,
        "registered": registered,
        "snapshot_rss_mb": round((rss_after - rss_before) / 1e6, 2),
        "idle": idle,
        "ads_flowing": flowing
        | {
            "ads": len(flowing_ads),
            "ad_p50": _percentile(flowing_ads, 0.5),
            "ad_p99": _percentile(flowing_ads, 0.99),
            "extra_cpu_seconds": round((cpu_flowing - cpu_idle) - (cpu_idle - cpu_start), 3),
        },
        "readvertisement": {
            "ads": len(burst),
            "cpu_ms_per_ad": round(1000 * (cpu_after_burst - cpu_before_burst) / len(burst), 3),
            "p50": _percentile(burst, 0.5),
            "p99": _percentile(burst, 0.99),
        },
        "ad_failures": failures[:5],
        "ad_failure_count": len(failures),
        "largest_ad": largest,
    }


def registry_scale(duration: float) -> dict[str, Any]:
    sizes = (100, 1000) if duration >= 60 else (100, 300)
    runs: dict[str, dict[str, Any]] = {}
    for database in ("sqlite", "postgresql"):
        for count in sizes:
            print(f"   {database}, {count} origins x {NAMESPACES} namespaces", flush=True)
            runs[f"{database}-{count}"] = one_size(count, database, duration)
    targets = []
    for database in ("sqlite", "postgresql"):
        measured = [runs[f"{database}-{count}"] for count in sizes]
        if any("skipped" in run for run in measured):
            targets.append(
                {
                    "name": f"{database}: runs",
                    "target": "a database server",
                    "measured": measured[0].get("skipped", "skipped"),
                    "ok": database == "postgresql",  # only PostgreSQL may be absent
                }
            )
            continue
        for run in measured:
            idle, flowing = run["idle"]["p99"], run["ads_flowing"]["p99"]
            bound = max(2 * idle, idle + 0.010)
            label = f"{database} N={run['origins']}"
            targets.append(
                {
                    "name": f"{label}: redirect p99 while ads flow",
                    "target": f"<= max(2 x idle p99, idle p99 + 10 ms) = {bound:.4f} s",
                    "measured": round(flowing, 4),
                    "ok": flowing <= bound,
                }
            )
            targets.append(
                {
                    "name": f"{label}: ad p99",
                    "target": "<= 0.050 s",
                    "measured": round(run["ads_flowing"]["ad_p99"], 4),
                    "ok": run["ads_flowing"]["ad_p99"] <= 0.050,
                }
            )
            non_307 = sum(
                number
                for phase in ("idle", "ads_flowing")
                for status, number in run[phase]["statuses"].items()
                if status != "307"
            )
            targets.append(
                {
                    "name": f"{label}: answers other than 307, and refused ads",
                    "target": "0",
                    "measured": non_307 + run["ad_failure_count"],
                    "ok": non_307 + run["ad_failure_count"] == 0,
                }
            )
        for run in measured:
            largest = run["largest_ad"]
            worst = largest["redirects"]["max"]
            refused = [status for status in largest["ad_statuses"] if status != 200]
            targets.append(
                {
                    "name": f"{database} N={run['origins']}: worst redirect while "
                    f"{LARGEST_AD}-namespace ads are stored (all stored)",
                    "target": f"<= {LARGEST_AD_WORST_REDIRECT:.3f} s",
                    "measured": round(worst, 4),
                    "ok": worst <= LARGEST_AD_WORST_REDIRECT
                    and not refused
                    and set(largest["redirects"]["statuses"]) == {"307"},
                }
            )
        small, large = (run["readvertisement"]["cpu_ms_per_ad"] for run in measured)
        targets.append(
            {
                "name": f"{database}: CPU per unchanged re-ad, N={sizes[1]} vs N={sizes[0]}",
                "target": "<= 2x",
                "measured": [large, small],
                "ok": large <= 2 * small,
            }
        )
    return {
        "config": {
            "sizes": sizes,
            "namespaces_per_origin": NAMESPACES,
            "redirect_rate": REDIRECT_RATE,
            "phase_seconds": duration,
            "burst_ads": BURST_ADS,
        },
        "runs": runs,
        "targets": targets,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (cost, latency) = plt.subplots(1, 2, figsize=(11, 4))
    for database, colour in (("sqlite", "#1f77b4"), ("postgresql", "#2ca02c")):
        runs = [
            run
            for key, run in result["runs"].items()
            if key.startswith(database) and "skipped" not in run
        ]
        if not runs:
            continue
        sizes = [run["origins"] for run in runs]
        cost.plot(
            sizes,
            [run["readvertisement"]["cpu_ms_per_ad"] for run in runs],
            marker="o",
            color=colour,
            label=f"{database}: CPU ms per re-ad",
        )
        latency.plot(
            sizes,
            [1000 * run["idle"]["p99"] for run in runs],
            marker="o",
            linestyle=":",
            color=colour,
            label=f"{database}: redirect p99, idle",
        )
        latency.plot(
            sizes,
            [1000 * run["ads_flowing"]["p99"] for run in runs],
            marker="s",
            color=colour,
            label=f"{database}: redirect p99, ads flowing",
        )
    cost.set_xlabel("origins (x 10 namespaces)")
    cost.set_ylabel("director CPU ms per unchanged re-advertisement")
    cost.set_ylim(bottom=0)
    cost.legend(fontsize=8)
    cost.set_title("registry-scale: the cost of one ad, by federation size")
    latency.set_xlabel("origins (x 10 namespaces)")
    latency.set_ylabel("ms")
    latency.set_ylim(bottom=0)
    latency.legend(fontsize=8)
    latency.set_title("redirect p99, idle and while every origin re-advertises")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
