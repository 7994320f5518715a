"""Processes under test and what is measured about them.

- ``Director``: the director started as the README starts it (``manage.py serve`` on a
  fresh SQLite file), or under ``gunicorn -k gevent`` with N workers; its settings row and
  servers are written with ``manage.py shell`` before it starts.
- ``FakeServers``: origins and caches in a process of their own (``bench.fakeservers``).
- ``pin_server`` / ``pin_clients``: on a machine of two cores or more, the process under
  test (a director, a baseline app) has the last core to itself and everything else (the
  harness, its load generators, the fake origins) shares the others. The director is one
  process of one thread: it loses nothing, and what the clients do no longer shows in
  its figures (unpinned, the same run measured ceilings from 400 to 870 redirects/s as
  the generator and the origins took turns on its core). Gunicorn's workers get every
  core.
- ``Sampler``: every second, the director's ``pelican_director_greenlets`` and
  ``pelican_director_inflight_requests`` (from /metrics) and the RSS, CPU and open file
  descriptors of its whole process tree (from /proc).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import requests

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / ".work"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    line = gevent.with_timeout(timeout, process.stdout.readline, timeout_value="")
    if not line:
        raise RuntimeError(f"{process.args} printed nothing within {timeout} s")
    return line


def server_core() -> set[int] | None:
    """The core kept for the process under test (None on a one-core machine)."""
    cores = sorted(os.sched_getaffinity(0) | _all_cores())
    return {cores[-1]} if len(cores) >= 2 else None


def _all_cores() -> set[int]:
    return set(range(os.cpu_count() or 1))


def _pin(pid: int, cores: set[int]) -> None:
    """Every thread of ``pid`` onto ``cores``."""
    try:
        threads = [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        threads = [pid]
    for thread in threads:
        try:
            os.sched_setaffinity(thread, cores)
        except OSError:  # the thread ended meanwhile
            pass


def pin_clients() -> None:
    """This process (and the children it starts from now on) off the server's core."""
    kept = server_core()
    if kept is not None:
        os.sched_setaffinity(0, _all_cores() - kept)


def pin_server(pids: list[int], *, all_cores: bool = False) -> None:
    """The process under test onto its own core (gunicorn's workers: onto every core)."""
    kept = server_core()
    if kept is None:
        return
    for pid in pids:
        _pin(pid, _all_cores() if all_cores else kept)


def stop(process: subprocess.Popen[str] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class FakeServers:
    """Origins and caches as real HTTP servers in their own process."""

    def __init__(self, specs: list[dict[str, Any]]) -> None:
        self.specs = specs
        self.process: subprocess.Popen[str] | None = None
        self.urls: dict[str, str] = {}

    def __enter__(self) -> FakeServers:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.fakeservers", json.dumps(self.specs)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.urls = json.loads(_read_line(self.process, 30))
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.process)


@dataclass
class ServerSpec:
    name: str
    kind: str  # origin | cache
    url: str
    namespace: str = "/bench"
    latitude: float | None = None
    longitude: float | None = None


@dataclass
class Director:
    """A director process on a fresh database, configured before it starts."""

    name: str
    settings: dict[str, Any]
    servers: list[ServerSpec]
    gunicorn_workers: int = 0  # 0: manage.py serve
    database_url: str = ""  # empty: a fresh SQLite file
    process: subprocess.Popen[str] | None = None
    url: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def __enter__(self) -> Director:
        workdir = WORK / self.name
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        self.env = dict(
            os.environ,
            DATABASE_URL=self.database_url or f"sqlite:///{workdir / 'director.sqlite3'}",
            PYTHONUNBUFFERED="1",
            DIRECTOR_LOG_LEVEL="WARNING",
        )
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=REPO, env=self.env, check=True)
        config = workdir / "config.json"
        config.write_text(
            json.dumps(
                {"settings": self.settings, "servers": [spec.__dict__ for spec in self.servers]}
            )
        )
        script = f"from bench.configure import apply; apply({str(config)!r})"
        subprocess.run([*manage, "shell", "-c", script], cwd=REPO, env=self.env, check=True)
        if self.gunicorn_workers:
            port = _free_port()
            command = [
                str(Path(sys.executable).parent / "gunicorn"),
                "-c",
                "gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(self.gunicorn_workers),
            ]
            self.process = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=subprocess.PIPE, text=True
            )
            self.url = f"http://127.0.0.1:{port}"
        else:
            self.process = subprocess.Popen(
                [*manage, "serve", "--port", "0"],
                cwd=REPO,
                env=self.env,
                stdout=subprocess.PIPE,
                text=True,
            )
            self.url = _read_line(self.process, 60).split()[3]
        self._wait_ready()
        pin_server(self.pids(), all_cores=self.gunicorn_workers > 0)
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/api/v1.0/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            gevent.sleep(0.2)
        raise RuntimeError(f"director {self.name} did not become healthy")

    def __exit__(self, *exc: object) -> None:
        stop(self.process)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def pids(self) -> list[int]:
        """The director's process and its children (gunicorn workers)."""
        if self.process is None:
            return []
        root = self.process.pid
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == root:
                    children.append(int(entry.name))
        return [root, *children]

    def metrics(self) -> dict[str, float]:
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        wanted = {}
        for name in ("pelican_director_greenlets", "pelican_director_inflight_requests"):
            match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
            if match:
                wanted[name] = float(match.group(1))
        return wanted

    def pools(self) -> dict[str, dict[str, Any]]:
        answer = requests.get(f"{self.url}/api/v1.0/director_ui/stat/pools", timeout=5)
        answer.raise_for_status()  # e.g. a 429 while the director sheds
        return {pool["name"]: pool for pool in answer.json()}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _open_files(pids: list[int]) -> int:
    """File descriptors open in ``pids`` (sockets included)."""
    total = 0
    for pid in pids:
        try:
            total += sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
    return total


def _proc_usage(pids: list[int]) -> tuple[float, float]:
    """(CPU seconds, RSS bytes) summed over ``pids``."""
    cpu = 0.0
    rss = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / TICKS
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return cpu, rss


@dataclass
class Sampler:
    """Samples the director every ``interval`` seconds while running."""

    director: Director
    interval: float = 1.0
    series: dict[str, list[float]] = field(
        default_factory=lambda: {
            "t": [],
            "greenlets": [],
            "inflight": [],
            "rss_mb": [],
            "cpu_percent": [],
            "cpu_seconds": [],
            "open_files": [],
        }
    )
    _greenlet: gevent.Greenlet | None = None
    origin: float = 0.0

    def start(self, origin: float) -> Sampler:
        self.origin = origin
        self._greenlet = gevent.spawn(self._run)
        return self

    def _run(self) -> None:
        last_cpu, last_t = None, None
        while True:
            now = time.monotonic()
            pids = self.director.pids()
            cpu, rss = _proc_usage(pids)
            try:
                metrics = self.director.metrics()
            except requests.RequestException:
                metrics = {}
            self.series["t"].append(now - self.origin)
            self.series["greenlets"].append(metrics.get("pelican_director_greenlets", float("nan")))
            self.series["inflight"].append(
                metrics.get("pelican_director_inflight_requests", float("nan"))
            )
            self.series["rss_mb"].append(rss / 1e6)
            self.series["cpu_seconds"].append(cpu)
            self.series["open_files"].append(float(_open_files(pids)))
            if last_cpu is not None and last_t is not None and now > last_t:
                self.series["cpu_percent"].append(100 * (cpu - last_cpu) / (now - last_t))
            else:
                self.series["cpu_percent"].append(0.0)
            last_cpu, last_t = cpu, now
            gevent.sleep(max(0.0, self.interval - (time.monotonic() - now)))

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()


def machine() -> dict[str, Any]:
    import platform

    import gevent as gevent_module

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    django_version = subprocess.run(
        [sys.executable, "-c", "import django; print(django.get_version())"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "gevent": gevent_module.__version__,
        "django": django_version,
        "kernel": platform.release(),
    }
