"""The benchmark suite: each bench against its plain-Celery floor, in the same run.

    python -m bench all                 # every bench, medians of 3 runs (``make bench``)
    python -m bench latency --runs 5    # one bench
    python -m bench drain --smoke       # tiny counts, no targets judged (what CI runs)
    python -m bench plot                # PNGs in docs/benchmarks/ from bench/results/latest.jsonl

Each bench is a module ``bench/<name>.py`` with ``run(*, smoke) -> {"figures",
"baseline", "ratio", "targets"}``. The runner calls it ``--runs`` times and
prints one JSON line per bench: the median of each figure and baseline figure
over the runs; each ratio is the ratio of those medians when the bench has a
figure and a baseline figure of that name, else the median of the runs'
ratios; "met" judges each target (``"<= 1.5x ..."`` against the ratio,
``"<= 10"`` against the figure), not with ``--smoke``. A bench that fails
prints ``{"bench": name, "error": ...}`` and the runner goes on, exiting 1 at
the end. Lines are also kept in ``--save`` (default ``bench/results/latest.jsonl``,
one line per bench, the newest replacing the older; smoke runs save only when asked).
"""

import argparse
import importlib
import json
import re
import signal
import statistics
import sys
import time
import traceback
from pathlib import Path

BENCHES = ["latency", "drain", "throughput", "flow", "publish", "scale", "memory", "anatomy"]
LATEST = Path(__file__).resolve().parent / "results" / "latest.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=[*BENCHES, "all", "plot"])
    parser.add_argument("--runs", type=int, help="runs per bench (default 3; 1 with --smoke)")
    parser.add_argument("--smoke", action="store_true", help="tiny counts, no targets judged")
    parser.add_argument("--save", type=Path, help="keep the lines here (default bench/results/latest.jsonl)")
    parser.add_argument("--from", dest="source", type=Path, default=LATEST, help="plot: the lines to plot")
    args = parser.parse_args(argv)
    if args.name == "plot":
        from bench import plots

        for path in plots.plot(args.source):
            print(path)
        return 0
    runs = args.runs or (1 if args.smoke else 3)
    save = args.save or (None if args.smoke else LATEST)
    # A SIGTERM (a CI timeout, a kill) unwinds like Ctrl-C, so every bench stops the processes it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from bench import harness

    harness.setup()
    failed = False
    for name in BENCHES if args.name == "all" else [args.name]:
        line = measure(name, runs=runs, smoke=args.smoke)
        failed = failed or "error" in line
        print(json.dumps(line), flush=True)
        if save and "error" not in line:
            keep(line, save)
    return 1 if failed else 0


def measure(name: str, *, runs: int, smoke: bool) -> dict:
    began = time.monotonic()
    try:
        module = importlib.import_module(f"bench.{name}")
        results = []
        for number in range(1, runs + 1):
            started = time.monotonic()
            results.append(module.run(smoke=smoke))
            print(f"bench {name}: run {number}/{runs} took {time.monotonic() - started:.1f}s", file=sys.stderr)
    except Exception as exc:
        traceback.print_exc()
        return {"bench": name, "error": f"{type(exc).__name__}: {exc}"}
    line = summarise(name, results)
    if smoke:
        line["smoke"] = True
        del line["met"]
    line["seconds"] = round(time.monotonic() - began, 1)
    return line


def summarise(name: str, results: list[dict]) -> dict:
    figures = medians([r["figures"] for r in results])
    baseline = medians([r.get("baseline", {}) for r in results])
    ratio = {}
    for key in dict.fromkeys(k for r in results for k in r.get("ratio", {})):
        if figures.get(key) is not None and baseline.get(key):
            ratio[key] = figures[key] / baseline[key]
        else:
            ratio[key] = statistics.median(r["ratio"][key] for r in results if key in r.get("ratio", {}))
    targets = results[0].get("targets", {})
    met = {}
    for key, target in targets.items():
        verdict = judge(target, figures.get(key), ratio.get(key))
        if verdict is not None:
            met[key] = verdict
    return {
        "bench": name,
        "runs": len(results),
        "figures": rounded(figures),
        "baseline": rounded(baseline),
        "ratio": rounded(ratio),
        "targets": targets,
        "met": met,
    }


def medians(runs: list[dict]) -> dict:
    keys = dict.fromkeys(k for run in runs for k in run)
    return {k: statistics.median(run[k] for run in runs if k in run) for k in keys}


def rounded(values: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}


TARGET = re.compile(r"^\s*(<=|>=|<|>)\s*(\d+(?:\.\d+)?)\s*(x?)")


def judge(target: str, figure: float | None, ratio: float | None) -> bool | None:
    """``"<= 1.5x baseline"`` judges the ratio, ``"< 60"`` (ms, %, ...) the figure; None when it cannot."""
    match = TARGET.match(target)
    if not match:
        return None
    op, bar, relative = match.group(1), float(match.group(2)), bool(match.group(3))
    value = ratio if relative else figure
    if value is None:
        return None
    return {"<=": value <= bar, ">=": value >= bar, "<": value < bar, ">": value > bar}[op]


def keep(line: dict, path: Path) -> None:
    """Replace the bench's line in ``path`` (one line per bench)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.loads(text) for text in path.read_text().splitlines() if text.strip()] if path.exists() else []
    lines = [old for old in lines if old.get("bench") != line["bench"]] + [line]
    lines.sort(key=lambda item: BENCHES.index(item["bench"]) if item["bench"] in BENCHES else len(BENCHES))
    path.write_text("".join(json.dumps(item) + "\n" for item in lines))


if __name__ == "__main__":
    sys.exit(main())
