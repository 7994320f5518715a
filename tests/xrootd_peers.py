"""Real XRootD servers for the tests: an XrdHttp origin and an XCache on 127.0.0.1.

Debian's ``xrootd-server``, ``xrootd-server-plugins`` (XrdHttp, XrdPss, XrdPfc) and
``xrootd-client-http-plugins`` (XrdClHttp, with which XCache fetches over HTTP) are listed
in ``.ci/system-packages.txt``; ``make test`` installs them when missing. Tests skip, with
the reason, only when they are not there (``missing_xrootd``).

Each server gets a folder of its own under /tmp (config rendered from ``tests/xrootd/``,
data, admin files, log) and a port picked free just before it starts (picked again if
another process took it meanwhile). XRootD refuses to run as root: under root it runs as
the ``xrootd`` user the package creates (else ``nobody``) through ``setpriv``, which
execs it, so the process the test holds is xrootd itself; its folder is handed to that
user.
"""

from __future__ import annotations

import ctypes.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import requests

CONFIGS = Path(__file__).resolve().parent / "xrootd"
START_TIMEOUT = 30.0  # seconds for xrootd to answer HTTP: generous, on a busy machine
STOP_GRACE = 5.0
START_ATTEMPTS = 3  # a picked port may be taken before xrootd binds it
PLUGINS = ("XrdHttp-5", "XrdPss-5", "XrdPfc-5", "XrdClHttp-5")
PACKAGES = "xrootd-server xrootd-server-plugins xrootd-client-http-plugins"


def missing_xrootd() -> str:
    """Why XRootD servers cannot run here, or "" when they can."""
    if shutil.which("xrootd") is None:
        return f"no xrootd on PATH (Debian: {PACKAGES}; make test installs them)"
    missing = [name for name in PLUGINS if ctypes.util.find_library(name) is None]
    if missing:
        return f"XRootD plugins missing: lib{', lib'.join(missing)}.so (Debian: {PACKAGES})"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "running as root without setpriv to run xrootd as an unprivileged user"
    return ""


def run_as() -> pwd.struct_passwd | None:
    """The unprivileged user to run xrootd as when we are root; None: as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("xrootd", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("neither an 'xrootd' nor a 'nobody' user exists to run xrootd as")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class XRootDServer:
    """One xrootd process (``role``: ``origin`` or ``cache``) and its folder."""

    def __init__(self, role: str, **values: str) -> None:
        self.role = role
        self.values = values
        self.user = run_as()
        self.root = Path(tempfile.mkdtemp(prefix=f"director-xrootd-{role}-"))
        self.data = self.root / "data"
        self.admin = self.root / "admin"
        self.data.mkdir()
        self.admin.mkdir()
        self.log = self.root / role / "xrootd.log"  # xrootd -n <name> logs under <dir>/<name>/
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def own(self, path: Path) -> None:
        """Hand ``path`` (and everything under it) to the user xrootd runs as."""
        if self.user is None:
            return
        for directory, _, files in os.walk(path):
            os.chown(directory, self.user.pw_uid, self.user.pw_gid)
            for name in files:
                os.chown(Path(directory) / name, self.user.pw_uid, self.user.pw_gid)

    def start(self) -> XRootDServer:
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            config = self.root / f"{self.role}.cfg"
            template = (CONFIGS / f"{self.role}.cfg").read_text()
            config.write_text(
                template.format(port=self.port, data=self.data, admin=self.admin, **self.values)
            )
            self.own(self.root)
            command = ["xrootd", "-c", str(config), "-l", str(self.root / "xrootd.log")]
            command += ["-n", self.role]
            if self.user is not None:
                command = [
                    "setpriv",
                    f"--reuid={self.user.pw_uid}",
                    f"--regid={self.user.pw_gid}",
                    "--clear-groups",
                    "--",
                    *command,
                ]
            self.process = subprocess.Popen(
                command, cwd=self.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            if self._wait_ready():
                return self
            if "already in use" not in self.log_text():
                break
        self.stop()
        raise RuntimeError(f"xrootd {self.role} did not start:\n{self.log_text()[-3000:]}")

    def _wait_ready(self) -> bool:
        """True once it answers HTTP; False if it exits first (or not within the time)."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                requests.head(f"{self.url}/", timeout=1.0)
                return True
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        return False

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_GRACE)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
