"""The open-loop HTTP load generator, driven from Python.

The generator itself is ``bench/openloop.c`` (its header says why C and what it does):
the k-th request is due at ``start + k / rate`` whatever the server does, its latency is
measured from that intended time (coordinated omission, reliability-anchors section 6),
connections are kept alive and reused, a response whose headers take longer than
``header_timeout`` (10 s) is a client time-out, and the generator reports the rate it
actually achieved and its send lag, so a saturated generator is visible too.

It is built here with the system's C compiler on first use (about a second), into a
git-ignored folder, and run as a child process: under gevent the wait is cooperative.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "openloop.c"
BUILD = SOURCE.parent / ".build"

Record = tuple[float, float, int, str]  # (intended offset s, latency s, status, error kind)


@dataclass
class LoadResult:
    rate: float
    duration: float
    records: list[Record] = field(default_factory=list)
    started_at: float = 0.0  # wall clock
    send_lag_max: float = 0.0
    send_lag_p99: float = 0.0
    dropped: int = 0  # requests the generator could not even start (connections full)
    achieved_rate: float = 0.0


def generator_binary() -> Path:
    """The compiled generator, rebuilt when its source changes."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    binary = BUILD / f"openloop-{digest}"
    if binary.exists():
        return binary
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("the benchmarks' load generator needs a C compiler (cc or gcc)")
    BUILD.mkdir(exist_ok=True)
    partial = binary.with_suffix(".partial")
    subprocess.run(
        [compiler, "-O2", "-Wall", "-o", str(partial), str(SOURCE), "-lm"],
        check=True,
        capture_output=True,
    )
    partial.replace(binary)
    return binary


class OpenLoop:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        header_timeout: float = 10.0,
        max_concurrency: int = 6000,
        extra_headers: str = "",
    ) -> None:
        self.host = host
        self.port = port
        self.header_timeout = header_timeout
        self.max_concurrency = max_concurrency
        self.extra_headers = [line for line in extra_headers.split("\r\n") if line]

    def run(self, rate: float, duration: float, path_for: Callable[[int], str]) -> LoadResult:
        """Send ``rate`` requests per second for ``duration`` seconds; wait for them all."""
        binary = generator_binary()
        total = int(rate * duration)
        with tempfile.TemporaryDirectory(prefix="openloop-") as folder:
            paths = Path(folder) / "paths"
            paths.write_text("".join(f"{path_for(index)}\n" for index in range(total)))
            out = Path(folder) / "records"
            command = [
                str(binary),
                *("--host", self.host, "--port", str(self.port)),
                *("--rate", repr(rate), "--duration", repr(duration)),
                *("--header-timeout", repr(self.header_timeout)),
                *("--max-connections", str(self.max_concurrency)),
                *("--paths", str(paths), "--out", str(out)),
            ]
            for header in self.extra_headers:
                command += ["--extra-header", header]
            started_at = time.time()
            finished = subprocess.run(command, capture_output=True, text=True, check=True)
            totals = json.loads(finished.stdout)
            records: list[Record] = []
            with out.open() as lines:
                for line in lines:
                    intended, latency, status, error = line.split()
                    kind = "" if error == "-" else error
                    records.append((float(intended), float(latency), int(status), kind))
        return LoadResult(
            rate=rate,
            duration=duration,
            records=records,
            started_at=started_at,
            send_lag_max=totals["send_lag_max"],
            send_lag_p99=totals["send_lag_p99"],
            dropped=totals["dropped"],
            achieved_rate=totals["achieved_rate"],
        )
