"""``python -m bench.run [--scenario NAME] [--duration S] [--full]``: run the benchmarks.

Writes bench/results/<scenario>.json and .png, then regenerates the README's
Performance section from every JSON present.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from bench import report  # noqa: E402
from bench.harness import WORK, machine, pin_clients, server_core  # noqa: E402
from bench.scenarios import SCENARIOS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append")
    parser.add_argument("--duration", type=float, default=None, help="Load seconds per scenario.")
    parser.add_argument("--full", action="store_true", help="The long forms of every scenario.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    names = args.scenario or list(SCENARIOS)
    pin_clients()
    about = machine() | {"server_core": sorted(server_core() or [])}
    failed = []
    for name in names:
        function, quick, full = SCENARIOS[name]
        duration = args.duration or (full if args.full else quick)
        print(f"== {name} ({duration:g} s of load)", flush=True)
        started = time.time()
        result = function(duration)
        result = {
            "scenario": name,
            "machine": about,
            "started_at": started,
            "wall_seconds": round(time.time() - started, 1),
        } | result
        path = report.RESULTS / f"{name}.json"
        path.write_text(json.dumps(result, indent=1, default=float))
        report.plot(result)
        for item in result["targets"]:
            mark = "ok  " if item["ok"] else "MISS"
            print(f"   {mark} {item['name']}: {item['measured']} (target {item['target']})")
            if not item["ok"]:
                failed.append(f"{name}: {item['name']}")
    report.update_readme()
    shutil.rmtree(WORK, ignore_errors=True)
    if failed:
        print("targets missed:\n  " + "\n  ".join(failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
