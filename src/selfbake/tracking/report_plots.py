"""The report's two kinds of figure, as base64 PNG for a self-contained page: curves and interval bars.

Curves are for quantities that change over steps or iterations (a training
loss, held-out KL, accuracy per iteration); a series with one point is not a
curve and is shown in a table instead. Bars with 95 % intervals are for
accuracies or rates measured once per task or condition, where the interval
is what tells two bars apart.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

Series = dict[str, tuple[list[float], list[float]]]  # label -> (xs, ys)


@dataclass(frozen=True)
class Figure:
    title: str
    png: str  # base64
    alt: str = ""  # what the image shows, for the page (defaults to the title)

    def __post_init__(self):
        if not self.alt:
            object.__setattr__(self, "alt", self.title)


@dataclass(frozen=True)
class Bar:
    label: str
    rate: float
    low: float | None = None
    high: float | None = None
    n: int | None = None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _encode(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    _pyplot().close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def curves(title: str, series: Series, *, xlabel: str = "step", ylabel: str = "", alt: str = "") -> Figure:
    """One axis, a line per label (e.g. dev / test / hard), markers when the points are few."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.0), dpi=110)
    integer_x = True
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o" if len(xs) < 40 else None, linewidth=1.5, label=label)
        integer_x = integer_x and all(float(x).is_integer() for x in xs)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=integer_x))
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return Figure(title, _encode(fig), alt)


def interval_bars(
    title: str, bars: list[Bar], *, xlabel: str = "rate", baseline: float | None = None
) -> Figure:
    """Horizontal bars, each with its 95 % interval as an error bar and its n in the label."""
    plt = _pyplot()
    height = 0.9 + 0.42 * len(bars)
    fig, ax = plt.subplots(figsize=(5.8, height), dpi=110)
    ys = list(range(len(bars)))[::-1]
    rates = [b.rate for b in bars]
    errors = [
        [max(0.0, b.rate - b.low) if b.low is not None else 0.0 for b in bars],
        [max(0.0, b.high - b.rate) if b.high is not None else 0.0 for b in bars],
    ]
    ax.barh(ys, rates, xerr=errors, color="#4c78a8", alpha=0.85, capsize=4, error_kw={"linewidth": 1.2})
    ax.set_yticks(ys, [f"{b.label} (n={b.n})" if b.n is not None else b.label for b in bars], fontsize=8)
    if baseline is not None and math.isfinite(baseline):
        ax.axvline(baseline, color="#e45756", linestyle="--", linewidth=1.2, label=f"baseline {baseline:.3f}")
        ax.legend(fontsize=8, loc="lower right")
    upper = max([1.0] + [b.high for b in bars if b.high is not None] + rates)
    ax.set_xlim(0, upper * 1.02 if upper > 1.0 else 1.0)
    ax.set_xlabel(f"{xlabel} (bars: 95 % interval)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return Figure(title, _encode(fig))


def grouped_interval_bars(title: str, groups: dict[str, list[Bar]], *, xlabel: str = "rate") -> Figure:
    """Several measures (e.g. behaviour and accuracy) per condition, side by side, each with its interval."""
    plt = _pyplot()
    labels = list(dict.fromkeys(b.label for bars in groups.values() for b in bars))
    fig, ax = plt.subplots(figsize=(5.8, 1.0 + 0.55 * len(labels) * max(1, len(groups)) / 1.6), dpi=110)
    width = 0.8 / max(1, len(groups))
    for g, (measure, bars) in enumerate(groups.items()):
        by_label = {b.label: b for b in bars}
        ys, rates, lows, highs = [], [], [], []
        for i, label in enumerate(labels):
            bar = by_label.get(label)
            if bar is None:
                continue
            ys.append(len(labels) - 1 - i + (len(groups) - 1 - 2 * g) * width / 2)
            rates.append(bar.rate)
            lows.append(max(0.0, bar.rate - bar.low) if bar.low is not None else 0.0)
            highs.append(max(0.0, bar.high - bar.rate) if bar.high is not None else 0.0)
        ax.barh(ys, rates, height=width, xerr=[lows, highs], capsize=3, label=measure, alpha=0.85)
    ax.set_yticks(list(range(len(labels)))[::-1], labels, fontsize=8)
    ax.set_xlim(0, 1.0)
    ax.set_xlabel(f"{xlabel} (bars: 95 % interval)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return Figure(title, _encode(fig))
