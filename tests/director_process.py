"""A director in its own process (``manage.py serve``) for tests that measure it.

The greenlet count of an in-process director would include the test's own clients and
file servers; a separate process reports only its own.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import gevent
import requests

REPO = Path(__file__).resolve().parent.parent
PUBLIC = {"PublicRead": True, "Read": True}


class DirectorProcess:
    """Owner of one ``manage.py serve --port 0`` child with its own SQLite file (or the
    ``database_url`` given), ``env`` added to its environment."""

    def __init__(
        self,
        workdir: Path,
        *,
        database_url: str = "",
        env: dict[str, str] | None = None,
        **settings: Any,
    ) -> None:
        self.env = dict(
            os.environ,
            DATABASE_URL=database_url or f"sqlite:///{workdir / 'director.sqlite3'}",
            PYTHONUNBUFFERED="1",
            **(env or {}),
        )
        self.settings = {"startup_grace": 0.0, **settings}
        self.tokens: dict[str, str] = {}
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.tls_url = ""

    def manage(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return done.stdout

    def start(self, prefixes: list[str], *serve_args: str) -> DirectorProcess:
        """Migrate, save the settings row, issue tokens for ``prefixes``, serve (with
        ``serve_args``; with ``--tls-port``, ``tls_url`` is its HTTPS URL)."""
        self.manage("migrate", "--noinput", "-v0")
        script = (
            "import json\n"
            "from director.models import StatSettings, RegistrationToken\n"
            "row = StatSettings.load()\n"
            f"for k, v in json.loads({json.dumps(json.dumps(self.settings))}).items():\n"
            "    setattr(row, k, v)\n"
            "row.full_clean(); row.save()\n"
            f"for p in {prefixes!r}:\n"
            "    print('TOKEN', p, RegistrationToken.issue(p)[1])\n"
        )
        for line in self.manage("shell", "-c", script).splitlines():
            if line.startswith("TOKEN "):
                _, prefix, secret = line.split()
                self.tokens[prefix] = secret
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", "0", *serve_args],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = gevent.with_timeout(30, self.process.stdout.readline, timeout_value="")
        if "serving on" not in line:
            self.stop()
            raise RuntimeError(f"director did not start: {line!r}")
        self.url = line.split()[3]
        secure = re.search(r"; (https://\S+)\)$", line.strip())
        self.tls_url = secure.group(1) if secure else ""
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def register(self, name: str, kind: str, data_url: str, namespace: str) -> None:
        prefix = f"/{kind}s/{name}"
        now = dt.datetime.now(dt.UTC)
        ad = {
            "name": name,
            "registry-prefix": prefix,
            "data-url": data_url,
            "capabilities": PUBLIC,
            "namespaces": [{"Caps": PUBLIC, "path": namespace}],
            "now": now.isoformat(),
            "expiry": (now + dt.timedelta(minutes=10)).isoformat(),
        }
        endpoint = "registerOrigin" if kind == "origin" else "registerCache"
        answer = requests.post(
            f"{self.url}/api/v1.0/director/{endpoint}",
            json=ad,
            headers={"Authorization": f"Bearer {self.tokens[prefix]}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text

    def health(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/api/v1.0/health", timeout=5).json()

    def pools(self) -> dict[str, dict[str, Any]]:
        answer = requests.get(f"{self.url}/api/v1.0/director_ui/stat/pools", timeout=5)
        return {pool["name"]: pool for pool in answer.json()}
