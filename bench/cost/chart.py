"""The chart: calls/s and proxy CPU µs per call, per configuration and workload (a figure;
`bench.results` saves it).

A bare matplotlib ``Figure`` (no pyplot, no display: saving picks the Agg canvas). Two rows
(calls/s; proxy CPU per call), one column per workload, one bar per configuration at its
median with a min-max whisker, the median written on the bar. Both axes are logarithmic: the
configurations differ by more than an order of magnitude, and a log axis keeps every bar
readable.
"""

from __future__ import annotations

import math

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from bench.cost.report import Spread, Summary

COLORS = {"direct": "#999999", "gproxy-w1": "#1f77b4", "gproxy-w2": "#6baed6",
          "gproxy-native-w1": "#d62728",
          "nginx": "#2ca02c", "haproxy": "#ff7f0e",
          "direct-tls": "#cccccc", "gproxy-w1-tls": "#08519c", "nginx-tls": "#98df8a"}


def _bars(axis: Axes, names: list[str], spreads: list[Spread | None], label: str) -> None:
    shown = [(n, s) for n, s in zip(names, spreads, strict=True) if s is not None]
    if not shown:
        axis.set_visible(False)
        return
    xs = range(len(shown))
    medians = [s.median for _, s in shown]
    errors = [[s.median - s.low for _, s in shown], [s.high - s.median for _, s in shown]]
    axis.bar(xs, medians, yerr=errors, capsize=3,
             color=[COLORS.get(n, "#8c564b") for n, _ in shown])
    axis.set_yscale("log")
    # A log axis has no zero: start every bar at the same power of ten below the smallest.
    # (A figure below the /proc tick resolution reads 0 and gets no visible bar.)
    lowest = min((s.low for _, s in shown if s.low > 0), default=1.0)
    axis.set_ylim(10 ** math.floor(math.log10(lowest / 2)),
                  max(*(s.high for _, s in shown), lowest) * 3)
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axis.set_xticks(list(xs), [n for n, _ in shown], rotation=20, fontsize=8)
    axis.set_ylabel(label, fontsize=8)
    axis.tick_params(axis="y", labelsize=7)
    for x, value, (_, spread) in zip(xs, medians, shown, strict=True):
        axis.annotate(f"{value:,.0f}" if value >= 10 else f"{value:.2g}", (x, spread.high),
                      ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                      textcoords="offset points")


def draw(summaries: dict[str, dict[str, Summary]], *, titles: dict[str, str],
         has_proxy: dict[str, bool], caption: str) -> Figure:
    """The chart as a figure, for ``bench.results`` to save."""
    workloads = list(summaries)
    figure = Figure(figsize=(4.2 * len(workloads), 6.5))
    axes = figure.subplots(2, len(workloads), squeeze=False)
    for column, workload in enumerate(workloads):
        configs = summaries[workload]
        names = list(configs)
        _bars(axes[0][column], names, [configs[n].rate for n in names], "calls/s")
        axes[0][column].set_title(titles[workload], fontsize=9)
        _bars(axes[1][column], names,
              [configs[n].cpu_us["proxy"] if has_proxy[n] else None for n in names],
              "proxy CPU µs per call")
    figure.suptitle(caption, fontsize=9)
    figure.tight_layout()
    return figure
