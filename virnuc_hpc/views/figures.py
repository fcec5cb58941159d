"""The run report's figures, drawn by matplotlib on its Agg canvas (no display, no pyplot
state): each function takes plain numbers and returns PNG bytes.

This module imports matplotlib: import it lazily (report.py does), never from modules that
`status` or `reduce` load at start.
"""

from __future__ import annotations

import io
from typing import Mapping, NamedTuple, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

VIRUS, OTHERS, SEQUENCE, MUTED = "#d62728", "#1f3b9c", "#d0d0d0", "#6b6b6b"
WIDTH_IN, DPI = 10.0, 100
PANEL_IN = 1.55
BEST_SCORE_LIMITS = (0.45, 1.05)  # the best of two probabilities is at least 0.5


class Track(NamedTuple):
    """One sequence of the prediction figure: its chunks as (start, end, best score, virus)."""

    title: str
    length: int
    chunks: Sequence[tuple[int, int, float, bool]]
    note: str = ""


def _figure(height_in: float, layout: str | None = "constrained") -> Figure:
    figure = Figure(figsize=(WIDTH_IN, height_in), layout=layout)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _say(ax, text: str) -> None:
    """An empty plot that says why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", color=MUTED, transform=ax.transAxes,
            wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _plain(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(colors=MUTED, which="both")


def _thousands(ax, axis: str = "x") -> None:
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))


# --- calls and frames ---------------------------------------------------------------------

def score_histograms(edges: np.ndarray, counts: Mapping[str, np.ndarray]) -> bytes:
    """One panel per call: how many sequences have each best virus score."""
    figure = _figure(2.8)
    axes = figure.subplots(1, 2, sharex=True)
    for ax, (call, color) in zip(axes, (("virus", VIRUS), ("others", OTHERS))):
        values = counts[call]
        ax.set_title(f"{call}: {int(values.sum()):,} sequences", color=color, loc="left")
        if not values.sum():
            _say(ax, f"no sequence called {call}")
            continue
        ax.stairs(values, edges, fill=True, color=color, alpha=0.85)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel("best virus score (max score2 over the sequence's kept frames)")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        _thousands(ax, "y")
        _plain(ax)
    axes[0].set_ylabel("sequences")
    return _png(figure)


def kept_frames(counts: Mapping[int, int]) -> bytes:
    """Sequences by number of kept frames (0: skipped), one bar per value or binned."""
    figure = _figure(2.6)
    ax = figure.subplots()
    if not counts:
        _say(ax, "no input sequence")
        return _png(figure)
    values = np.fromiter(counts.keys(), dtype=np.int64)
    weights = np.fromiter(counts.values(), dtype=np.int64)
    top = int(values.max())
    edges = np.arange(top + 2) - 0.5 if top < 60 else np.linspace(0, top + 1, 51)
    heights, _ = np.histogram(values, edges, weights=weights)
    ax.stairs(heights, edges, fill=True, color=OTHERS, alpha=0.85)
    ax.set_xlabel("kept frames (stop-free frames over all chunks) per input sequence")
    ax.set_ylabel("sequences")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _thousands(ax, "y")
    _plain(ax)
    return _png(figure)


# --- VirNucPro's prediction figure ---------------------------------------------------------

def prediction(tracks: Sequence[Track], note: str = "") -> bytes:
    """Best score of each chunk along each sequence (red: virus chunk, blue: others), chunks
    drawn over the bases they span, the sequence in grey beneath. Panels are placed by a
    fixed grid (a constrained layout costs seconds per panel at 40 panels)."""
    top_in, bottom_in = (0.65 if note else 0.4), 0.8
    height = top_in + bottom_in + PANEL_IN * max(1, len(tracks))
    figure = _figure(height, layout=None)
    if note:
        figure.suptitle(note, color=VIRUS, fontsize=10, y=1 - 0.12 / height, va="top")
    grid = dict(left=0.08, right=0.985, top=1 - top_in / height, bottom=bottom_in / height,
                hspace=0.55)
    if not tracks:
        _say(figure.subplots(gridspec_kw=grid), "no predicted sequence to draw: every input "
                                                "sequence was skipped")
        return _png(figure)
    axes = figure.subplots(len(tracks), 1, squeeze=False, gridspec_kw=grid)[:, 0]
    for ax, track in zip(axes, tracks):
        _track(ax, track)
    axes[-1].set_xlabel("position in the sequence (bp)")
    figure.legend(handles=_legend(), loc="lower right", ncols=3, frameon=False, fontsize=8,
                  bbox_to_anchor=(0.985, 0.0))
    return _png(figure)


def _track(ax, track: Track) -> None:
    ax.set_title(track.title, loc="left", fontsize=10, fontweight="bold")
    low, high = BEST_SCORE_LIMITS
    ax.set_ylim(low, high)
    ax.set_yticks([0.5, 0.75, 1.0])
    ax.set_xlim(0, max(track.length, 1))
    ax.plot([0, track.length], [low + 0.02, low + 0.02], color=SEQUENCE, linewidth=4,
            solid_capstyle="butt")
    segments = [((start, best), (end, best)) for start, end, best, _ in track.chunks]
    colors = [VIRUS if virus else OTHERS for *_, virus in track.chunks]
    ax.add_collection(LineCollection(segments, colors=colors, linewidths=2.5))
    if track.note:
        ax.text(0.5, 0.6, track.note, ha="center", va="center", color=MUTED,
                transform=ax.transAxes)
    ax.set_ylabel("best score", fontsize=8)
    _thousands(ax)
    _plain(ax)


def _legend() -> list[Line2D]:
    return [Line2D([], [], color=VIRUS, linewidth=2.5, label="virus chunk"),
            Line2D([], [], color=OTHERS, linewidth=2.5, label="others chunk"),
            Line2D([], [], color=SEQUENCE, linewidth=4, label="sequence")]


# --- shards over time ----------------------------------------------------------------------

def timeline(indices: Sequence[int], starts: Sequence[float], ends: Sequence[float],
             hosts: Sequence[str], unit: str) -> bytes:
    """One bar per shard from its start to its end (in `unit`s since the first start), one
    colour per host."""
    figure = _figure(min(6.0, 1.6 + 0.06 * len(indices)))
    ax = figure.subplots()
    if not indices:
        _say(ax, "no shard recorded when it started (DONE files of an older version)")
        return _png(figure)
    palette = {host: f"C{i % 10}" for i, host in enumerate(dict.fromkeys(hosts))}
    ax.barh(indices, np.subtract(ends, starts), left=starts, height=0.8,
            color=[palette[host] for host in hosts])
    ax.set_xlabel(f"{unit} since the first shard started")
    ax.set_ylabel("shard")
    if len(indices) <= 12:
        ax.set_yticks(indices)
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(max(indices) + 0.6, min(indices) - 0.6)
    if len(palette) <= 10:
        handles = [Line2D([], [], color=c, linewidth=6, label=h) for h, c in palette.items()]
        ax.legend(handles=handles, title="host", fontsize=8, frameon=False,
                  loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _plain(ax)
    return _png(figure)


def throughput(times: np.ndarray, cumulative_frames: np.ndarray, unit: str) -> bytes:
    """Frames published over wall time: one step per feature part (its mtime, its rows),
    times in `unit`s since the first shard started."""
    figure = _figure(2.6)
    ax = figure.subplots()
    if not len(times):
        _say(ax, "no kept frame: nothing was embedded")
        return _png(figure)
    ax.step(np.concatenate([[0.0], times]), np.concatenate([[0], cumulative_frames]),
            where="post", color=OTHERS)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"{unit} since the first shard started")
    ax.set_ylabel("frames embedded")
    _thousands(ax, "y")
    _plain(ax)
    return _png(figure)
