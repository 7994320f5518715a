"""Two director hosts sharing one PostgreSQL: each in a network namespace of its own
(``ip netns``, a veth pair to this host), the database on this host.

Each host's address serves redirects; each lists both live directors (and discovery
their endpoints); killing one leaves the other serving, and the dead one drops out of
the list when its ad expires (Pelican #3449: the survivor listed only the dead peer).
The test makes the namespaces and removes them; it skips, saying why, without the
privilege.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from own_postgres import OwnPostgres
from processes import REPO_ROOT, issue_token, manage_env, origin_ad, register_origin, run_manage_ok

pytestmark = pytest.mark.postgres

AD_INTERVAL = 0.5  # seconds: a director's ad lives three of these
PORT = 8000


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass
class Host:
    namespace: str
    host_side: str  # this host's address on the pair
    address: str  # the director host's address

    @property
    def url(self) -> str:
        return f"http://{self.address}:{PORT}"


@pytest.fixture
def hosts() -> Iterator[list[Host]]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (ip)")
    tag = secrets.token_hex(3)
    made: list[Host] = []
    try:
        for number in (1, 2):
            subnet = f"10.{200 + number}.{int(tag[:2], 16)}"
            host = Host(f"dtest-{tag}-{number}", f"{subnet}.1", f"{subnet}.2")
            outside, inside = f"dt{tag}h{number}", f"dt{tag}n{number}"
            try:
                ip("netns", "add", host.namespace)
            except subprocess.CalledProcessError as error:
                pytest.skip(f"cannot make a network namespace: {error.stderr!r}")
            made.append(host)
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", host.namespace)
            ip("addr", "add", f"{host.host_side}/24", "dev", outside)
            ip("link", "set", outside, "up")
            ip(
                "netns",
                "exec",
                host.namespace,
                "ip",
                "addr",
                "add",
                f"{host.address}/24",
                "dev",
                inside,
            )
            ip("netns", "exec", host.namespace, "ip", "link", "set", inside, "up")
            ip("netns", "exec", host.namespace, "ip", "link", "set", "lo", "up")
        yield made
    finally:
        for host in made:  # deleting a namespace deletes its end of the pair, and so both
            subprocess.run(["ip", "netns", "delete", host.namespace], capture_output=True)


@pytest.fixture
def shared_postgres(hosts: list[Host]) -> Iterator[OwnPostgres]:
    server = OwnPostgres(
        listen=("127.0.0.1", *(host.host_side for host in hosts)), clients="10.200.0.0/14"
    ).start()
    try:
        yield server
    finally:
        server.stop()


def director_on(host: Host, database_url: str, log) -> subprocess.Popen[bytes]:
    env = manage_env(
        database_url,
        DIRECTOR_NAME=f"director-{host.namespace[-1]}",
        DIRECTOR_SELF_AD_INTERVAL=str(AD_INTERVAL),
        DIRECTOR_REGISTRY_POLL_INTERVAL="0.5",
    )
    return subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            host.namespace,
            sys.executable,
            "manage.py",
            "serve",
            "--host",
            host.address,
            "--port",
            str(PORT),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_for(condition, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not within {within} s: {what}")


def director_names(host: Host) -> list[str]:
    answer = requests.get(f"{host.url}/api/v1.0/director/directors", timeout=5)
    return sorted(ad["name"] for ad in answer.json())


def test_two_hosts_serve_list_each_other_and_the_survivor_forgets_the_dead_one(
    hosts, shared_postgres, tmp_path, origin_server
):
    first, second = hosts
    on_host = manage_env(shared_postgres.url)
    run_manage_ok("migrate", "--noinput", env=on_host)
    secret = issue_token("/origins/shared", on_host)
    logs = [open(tmp_path / f"{host.namespace}.log", "wb") for host in hosts]
    directors = [
        director_on(host, shared_postgres.url.replace("127.0.0.1", host.host_side), log)
        for host, log in zip(hosts, logs, strict=True)
    ]
    try:
        for host in hosts:
            wait_for(
                lambda h=host: requests.get(f"{h.url}/api/v1.0/health", timeout=2).ok,
                30,
                f"{host.url} serving",
            )
        origin = origin_server({"/shared/f.txt": b"f"})
        register_origin(first.url, secret, origin_ad("shared", origin.url, "/shared"))
        path = "/api/v1.0/director/origin/shared/f.txt"
        for host in hosts:  # each host's address serves redirects
            wait_for(
                lambda h=host: (
                    requests.get(f"{h.url}{path}", allow_redirects=False, timeout=5).status_code
                    == 307
                ),
                5,
                f"{host.url} redirects",
            )
        both = ["director-1", "director-2"]
        for host in hosts:
            wait_for(lambda h=host: director_names(h) == both, 10, f"{host.url} lists both")
            discovery = requests.get(f"{host.url}/.well-known/pelican-configuration", timeout=5)
            assert sorted(discovery.json()["director_advertise_endpoints"]) == [
                first.url,
                second.url,
            ]

        directors[0].kill()  # no goodbye: its ad must expire
        directors[0].wait(timeout=10)
        answer = requests.get(f"{second.url}{path}", allow_redirects=False, timeout=5)
        assert answer.status_code == 307
        wait_for(
            lambda: director_names(second) == ["director-2"],
            3 * AD_INTERVAL + 5,
            "the survivor forgot the dead director",
        )
    finally:
        for process in directors:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
        for log in logs:
            log.close()
