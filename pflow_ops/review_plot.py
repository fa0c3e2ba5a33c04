"""The review's picture (``pflow-ops review --save DIR``): every real run of the period, its
duration over time, one marker per runbook and one colour per outcome. A table says how many;
the plot shows when and whether recovery time drifts. matplotlib, imported only here."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from pflow_ops.errors import UsageError

# One colour per outcome of the vocabulary (pflow_ops.outcome), the rest grey.
COLOURS = {
    "healthy": "#2e7d32",
    "recovered": "#1565c0",
    "escalate": "#ef6c00",
    "refused": "#6a1b9a",
    "error": "#c62828",
}
MARKERS = ("o", "s", "^", "D", "v")


def png_bytes(data: dict[str, Any]) -> bytes:
    """The PNG in memory (the HTML review embeds it)."""
    buf = io.BytesIO()
    plot(data, buf)
    return buf.getvalue()


def plot(data: dict[str, Any], path: Path | IO[bytes]) -> None:
    """Write the PNG: run duration (s) against start time, per runbook and outcome."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError(
            "review --save draws its plot with matplotlib: install it (pip install matplotlib, "
            "or the project's test extras)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    seen: set[str] = set()
    for i, stats in enumerate(data["runbooks"]):
        for outcome in sorted({p["outcome"] for p in stats["timeline"]}):
            points = [p for p in stats["timeline"] if p["outcome"] == outcome]
            label = f"{stats['runbook']} {outcome}"
            ax.scatter(
                _dates(points),
                [p["duration_s"] for p in points],
                marker=MARKERS[i % len(MARKERS)],
                color=COLOURS.get(outcome, "#757575"),
                label=label,
            )
            seen.add(label)
    period = data["period"]
    ax.set_title(f"Runs {period['from'][:10]} to {period['to'][:10]}: duration and outcome")
    ax.set_ylabel("run duration (s)")
    ax.grid(True, alpha=0.3)
    if seen:
        ax.legend(loc="upper left", fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def _dates(points: list[dict[str, Any]]) -> Any:
    """The start times as datetimes: matplotlib plots them on a date axis (its stubs type x as
    numbers only)."""
    return [datetime.fromisoformat(p["started_at"]) for p in points]
