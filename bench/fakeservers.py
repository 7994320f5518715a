"""Origins and caches for the benchmarks, in a process of their own.

``python -m bench.fakeservers '<json list>'`` starts one FileServer per item, e.g.
``[{"name": "H", "delay": 0.002, "any_path": true}, {"name": "S", "hang": true}]``, and
prints ``{"H": "http://127.0.0.1:PORT", ...}`` as one JSON line once all listen.
Keys: name, delay, hang, missing, any_path (bool), status.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402


def main() -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from director.demo.fileserver import FileServer

    urls = {}
    servers = []
    for spec in json.loads(sys.argv[1]):
        server = FileServer(name=spec["name"], max_connections=5000)
        behaviour = server.behaviour
        behaviour.delay = float(spec.get("delay", 0.0))
        behaviour.hang = bool(spec.get("hang", False))
        behaviour.hang_seconds = float(spec.get("hang_seconds", 3600.0))
        behaviour.missing = bool(spec.get("missing", False))
        behaviour.status = spec.get("status")
        if spec.get("any_path"):
            behaviour.any_path = b"x" * 1024
        server.max_seen = 0  # no per-request bookkeeping under load
        servers.append(server.start())
        urls[spec["name"]] = server.url
    print(json.dumps(urls), flush=True)
    gevent.wait()


if __name__ == "__main__":
    main()
