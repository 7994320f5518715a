"""Plots (one PNG per scenario) and the README's Performance section, from the JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
README = REPO / "README.md"
START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
ORDER = [
    "ceiling",
    "slow-origin",
    "only-slow-has-it",
    "fan-out",
    "cache-churn",
    "overload",
    "registry-scale",
    "soak",
]


def plot(result: dict[str, Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = result["scenario"]
    path = RESULTS / f"{name}.png"
    if name == "registry-scale":
        from bench import registry_scale

        registry_scale.plot(result, path)
        return path
    if name == "ceiling":
        runs = result["runs"]
        figure, axis = plt.subplots(figsize=(8, 4))
        labels = list(runs)
        values = [runs[label]["requests_per_second"] for label in labels]
        axis.bar(labels, values, color=["#999", "#777", "#1f77b4", "#2ca02c"])
        for index, value in enumerate(values):
            axis.text(index, value, f"{value:,.0f}", ha="center", va="bottom")
        axis.set_ylabel("requests / s (wrk -c50)")
        axis.set_title("ceiling: fixed-307 baselines and the director (no stat)")
        figure.tight_layout()
        figure.savefig(path, dpi=90)
        plt.close(figure)
        return path
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    requests = result.get("requests")
    if requests:
        colours = ["#1f77b4" if status == 307 else "#d62728" for status in requests["status"]]
        top.scatter(requests["t"], requests["latency"], s=2, c=colours, alpha=0.4, linewidths=0)
        top.set_yscale("log")
        top.axhline(2.0, color="#ff7f0e", linestyle="--", label="stat timeout 2 s")
        top.axhline(2.5, color="#d62728", linestyle="--", label="redirect deadline 2.5 s")
        top.set_ylabel("latency (s, from intended send)")
        top.legend(loc="upper right", fontsize=8)
    else:  # closed loop (wrk): no per-request latencies; memory and CPU instead
        series = result["series"]
        top.plot(series["t"], series["rss_mb"], color="#8c564b", label="RSS MB")
        top.set_ylim(0, max(series["rss_mb"], default=1) * 1.2)
        top.set_ylabel("RSS (MB)")
        cpu = top.twinx()
        cpu.plot(series["t"], series["cpu_percent"], color="#7f7f7f", alpha=0.5, label="CPU %")
        cpu.set_ylabel("CPU %")
        top.legend(loc="lower left", fontsize=8)
        cpu.legend(loc="lower right", fontsize=8)
    marks = result.get("marks", {})
    for axis in (top, bottom):
        for key, colour in (
            ("load_start", "#2ca02c"),
            ("load_end", "#2ca02c"),
            ("S_ejected", "#9467bd"),
        ):
            if marks.get(key) is not None:
                axis.axvline(marks[key], color=colour, linestyle=":", linewidth=1)
    series = result["series"]
    bottom.plot(series["t"], series["greenlets"], color="#1f77b4", label="greenlets")
    bottom.set_ylabel("greenlets")
    bottom.set_xlabel("seconds")
    twin = bottom.twinx()
    twin.plot(series["t"], series["rss_mb"], color="#8c564b", label="RSS MB")
    twin.set_ylabel("RSS (MB)")
    if "open_files" in series:
        bottom.plot(series["t"], series["open_files"], color="#17becf", label="open files")
    bottom.legend(loc="upper left", fontsize=8)
    twin.legend(loc="upper right", fontsize=8)
    top.set_title(f"{name}")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    if isinstance(value, list):
        return " vs ".join(_fmt(item) for item in value)
    return str(value)


def section() -> str:
    results = {}
    for name in ORDER:
        path = RESULTS / f"{name}.json"
        if path.exists():
            results[name] = json.loads(path.read_text())
    if not results:
        return "No benchmark results yet: run `make bench`."
    about = next(iter(results.values()))["machine"]
    lines = [
        f"Measured on {about['cores']} cores ({about['cpu']}), Python {about['python']}, "
        f"gevent {about['gevent']}, Django {about['django']}; "
        + (
            "the director has the last core to itself, the load generator (C, open loop), "
            "wrk and the fake origins share the others. "
            if about.get("server_core")
            else "load generator, director and fake origins share those cores. "
        )
        + "Regenerate with `make bench`.",
        "",
        "| Scenario | Target | Measured | |",
        "|---|---|---|---|",
    ]
    for name, result in results.items():
        for item in result["targets"]:
            mark = "yes" if item["ok"] else "**MISSED**"
            lines.append(
                f"| {name} | {item['name']}: {item['target']} | {_fmt(item['measured'])} | {mark} |"
            )
    if "ceiling" in results:
        runs = results["ceiling"]["runs"]
        lines += ["", "| Ceiling run (wrk -c50, 1 thread) | requests/s |", "|---|---|"]
        lines += [f"| {label} | {run['requests_per_second']:,.0f} |" for label, run in runs.items()]
    lines.append("")
    lines += [f"![{name}](bench/results/{name}.png)" for name in results]
    return "\n".join(lines)


def update_readme() -> None:
    text = README.read_text()
    if START not in text or END not in text:
        return
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{section()}\n{END}{tail}")


if __name__ == "__main__":
    for json_path in sorted(RESULTS.glob("*.json")):
        plot(json.loads(json_path.read_text()))
    update_readme()
