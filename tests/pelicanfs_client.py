"""Run pelicanfs operations against a federation and print what each one gave, as JSON.

Run by the tests with .venv-pelicanfs/bin/python (pelicanfs and its dependencies live
there: requirements-pelicanfs.txt), never imported by them: pelicanfs is asyncio and the
test process is gevent-patched. Trust comes from SSL_CERT_FILE in the environment.

    pelicanfs_client.py '{"federation": "pelican://127.0.0.1:8443",
                          "steps": [{"name": "hello", "op": "cat", "args": ["/x"]}]}'

Each step runs on a filesystem of its own (cold: discovery, the director, then the
servers), with ``token`` as its bearer token when given. Prints one JSON object: step
name -> {"value": ...} or {"error": exception class, "message": ...}; bytes come back as
{"bytes": latin-1 text}.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

from pelicanfs.core import PelicanFileSystem


def plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def run(fs: PelicanFileSystem, op: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    if op == "seek_read":  # open().seek(offset).read(length)
        path, offset, length = args
        with fs.open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(length)
    return getattr(fs, op)(*args, **kwargs)


def main() -> None:
    plan = json.loads(sys.argv[1])
    results: dict[str, Any] = {}
    for step in plan["steps"]:
        headers = {"Authorization": f"Bearer {step['token']}"} if step.get("token") else {}
        fs = PelicanFileSystem(plan["federation"], headers=headers, skip_instance_cache=True)
        try:
            value = run(fs, step["op"], step.get("args", []), step.get("kwargs", {}))
            results[step["name"]] = {"value": plain(value)}
        except Exception as error:  # every failure is a result the test checks
            results[step["name"]] = {"error": type(error).__name__, "message": str(error)}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
