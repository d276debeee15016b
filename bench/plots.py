"""``python -m bench plot``: PNGs of the latest lines for docs/benchmarks.md.

- ``latency.png``: commit -> handler done percentiles, the outbox against plain
  Celery (``latency``), and the outbox on empty tables against 1,000,000
  finished rows (``scale``);
- ``table_size.png``: deliveries per second draining a backlog and under load,
  empty tables against 1,000,000 finished rows (``scale``), with plain Celery's
  drain and load (``drain``, ``throughput``) as the floor.
"""

import json
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks"
PERCENTILES = ("p50_ms", "p90_ms", "p99_ms", "max_ms")


def plot(source: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    lines = {line["bench"]: line for line in map(json.loads, source.read_text().splitlines()) if "error" not in line}
    DOCS.mkdir(parents=True, exist_ok=True)
    written = []
    if "latency" in lines:
        written.append(_latency(lines["latency"], lines.get("scale")))
    if "scale" in lines:
        written.append(_table_size(lines["scale"], lines.get("drain"), lines.get("throughput")))
    if not written:
        raise SystemExit(f"{source} has no latency or scale line to plot")
    return written


def _latency(latency: dict, scale: dict | None) -> Path:
    import matplotlib.pyplot as plt

    panels = [
        (
            f"latency bench, medians of {latency['runs']} runs",
            [("outbox", latency["figures"]), ("plain Celery (delay_on_commit)", latency["baseline"])],
        )
    ]
    if scale:
        rows = f"{scale['figures']['history_rows']:,} finished rows"
        panels.append(
            (
                f"scale bench (outbox), medians of {scale['runs']} runs",
                [("empty tables", scale["baseline"]), (rows, scale["figures"])],
            )
        )
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels, strict=True):
        width = 0.8 / len(series)
        for i, (label, figures) in enumerate(series):
            xs = [p + (i - (len(series) - 1) / 2) * width for p in range(len(PERCENTILES))]
            bars = ax.bar(xs, [figures[k] for k in PERCENTILES], width, label=label)
            ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks(range(len(PERCENTILES)), [k.removesuffix("_ms") for k in PERCENTILES])
        ax.set_ylabel("commit -> handler done (ms)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle("Latency at light load (one event every 20 ms)")
    return _save(fig, "latency.png")


def _table_size(scale: dict, drain: dict | None, throughput: dict | None) -> Path:
    import matplotlib.pyplot as plt

    rows = f"{scale['figures']['history_rows']:,} finished rows"
    panels = [
        ("draining a backlog", "deliveries_per_s", drain["baseline"]["deliveries_per_s"] if drain else None),
        (
            "producers at full speed",
            "load_deliveries_per_s",
            throughput["baseline"]["deliveries_per_s"] if throughput else None,
        ),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharey=False)
    for ax, (title, key, floor) in zip(axes, panels, strict=True):
        bars = ax.bar(["empty tables", rows], [scale["baseline"][key], scale["figures"][key]], color=["C0", "C2"])
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
        if floor:
            ax.axhline(floor, color="C1", linestyle="--", label=f"plain Celery ({floor:.0f}/s, drain/throughput bench)")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("deliveries done per second")
    fig.suptitle(f"The outbox against its table size, medians of {scale['runs']} runs")
    return _save(fig, "table_size.png")


def _save(fig, name: str) -> Path:
    path = DOCS / name
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
