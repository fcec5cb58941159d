"""MultiQC custom content for a run's results: one `virnuc_hpc` section, one row per sample.

`reduce` writes these beside samples.tsv (the file names are RunDir.multiqc's, `*_mqc.json`, so
any MultiQC finds them, the one in a pipeline's own container included):

- `general_stats`: the General Statistics columns per sample: input sequences, predicted,
  virus calls (and their share of the predicted), skipped, and skipped by reason (hidden by
  default; MultiQC's column chooser shows them). A count the accounting does not hold is left
  out, never made up: `duplicates` (the reads equal to an earlier one of the run) appears
  only for samples that have some.
- `calls`: a bar per sample, virus + others + skipped by reason = its input sequences.
- `best_virus_score`: per sample, how many predicted sequences have their best virus score
  (max score2 over their kept frames) in each of scores.SCORE_EDGES' bins.

Everything is derived from reduce's per-sample accounting (what goes to samples.tsv and
summary.json) and the per-sample histograms it counts while the merge streams.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from .. import __version__
from .scores import Histogram
from ..sequences.prepare import SKIP_REASONS

SECTION = "virnuc_hpc"
TINY = ("The tiny model profile ran: random weights, these results are NOT biologically "
        "meaningful.")
CALL_COLOURS = {"virus": "#d62728", "others": "#1f77b4"}
SKIP_COLOURS = ("#7f7f7f", "#a6a6a6", "#c7c7c7", "#5f5f5f")


def _column(title: str, description: str, hidden: bool = False, **extra) -> dict:
    return {"title": title, "description": description, "format": "{:,.0f}", "min": 0,
            "hidden": hidden, **extra}


GENERAL_STATS = {
    "input_sequences": _column("Input seqs", "Input sequences (each one predicted or skipped)",
                               scale="Purples"),
    "predicted": _column("Predicted", "Sequences with at least one kept frame", scale="Blues"),
    "virus_sequences": _column("Virus", "Sequences called virus", scale="Reds"),
    "virus_percent": {"title": "% Virus", "description": "Virus calls, % of the predicted",
                      "suffix": "%", "min": 0, "max": 100, "format": "{:,.1f}",
                      "scale": "Reds"},
    "skipped": _column("Skipped", "Sequences with no kept frame (see the reasons)",
                       scale="Greys"),
    **{f"skipped_{reason}": _column(f"Skipped: {reason}", f"Skipped: {why}", hidden=True)
       for reason, why in SKIP_REASONS.items()},
    "duplicates": _column("Duplicates", "Duplicate sequences"),
}


def _stats_row(account: Mapping) -> dict:
    """A sample's General Statistics values (only what its accounting holds)."""
    reasons = account["skipped_by_reason"]
    row = {**account, **{f"skipped_{r}": reasons.get(r, 0) for r in SKIP_REASONS}}
    if not row.get("duplicates"):
        row.pop("duplicates", None)       # a column only where there are duplicates
    if account["predicted"]:
        row["virus_percent"] = 100.0 * account["virus_sequences"] / account["predicted"]
    return {key: row[key] for key in GENERAL_STATS if key in row}


def general_stats(accounts: Sequence[Mapping]) -> dict:
    data = {a["sample"]: _stats_row(a) for a in accounts}
    present = {key for row in data.values() for key in row}
    return {"id": f"{SECTION}_general_stats", "section_name": SECTION,
            "plot_type": "generalstats", "namespace": SECTION,
            "pconfig": [{key: spec} for key, spec in GENERAL_STATS.items() if key in present],
            "data": data}


def _parent(profile: str) -> dict:
    """What every section says of the parent section they share."""
    warning = f" {TINY}" if profile == "tiny" else ""
    return {"parent_id": SECTION, "parent_name": SECTION,
            "parent_description": f"VirNucPro viral sequence identification at cluster scale "
                                  f"(virnuc-hpc {__version__}).{warning}"}


def _call_counts(account: Mapping) -> dict:
    reasons = account["skipped_by_reason"]
    return {"virus": account["virus_sequences"], "others": account["others_sequences"],
            **{f"skipped_{r}": reasons.get(r, 0) for r in SKIP_REASONS}}


def calls(accounts: Sequence[Mapping], profile: str) -> dict:
    categories = {call: {"name": call, "color": colour} for call, colour in CALL_COLOURS.items()}
    categories |= {f"skipped_{r}": {"name": f"skipped: {r}", "color": colour}
                   for r, colour in zip(SKIP_REASONS, SKIP_COLOURS)}
    return {"id": f"{SECTION}_calls", "section_name": "Calls per sample",
            "description": "Each sample's input sequences: virus (a chunk is virus by "
                           "VirNucPro's rule), others (kept frames, no virus chunk), or skipped "
                           "(no kept frame) by reason.",
            "plot_type": "bargraph", **_parent(profile), "categories": categories,
            "pconfig": {"id": f"{SECTION}_calls_plot", "title": "virnuc_hpc: calls per sample",
                        "ylab": "Sequences", "cpswitch_counts_label": "Sequences"},
            "data": {a["sample"]: _call_counts(a) for a in accounts}}


def best_virus_score(accounts: Sequence[Mapping], histograms: Sequence[Histogram],
                     profile: str) -> dict:
    data = {a["sample"]: dict(zip(h.centres(), h.counts.tolist()))
            for a, h in zip(accounts, histograms)}
    width = float(histograms[0].edges[1] - histograms[0].edges[0]) if histograms else 0.0
    return {"id": f"{SECTION}_best_virus_score", "section_name": "Best virus score",
            "description": f"Predicted sequences by their best virus score (the highest score2 "
                           f"over their kept frames), in bins {width:g} wide (each point is a "
                           f"bin's centre).",
            "plot_type": "linegraph", **_parent(profile),
            "pconfig": {"id": f"{SECTION}_best_virus_score_plot",
                        "title": "virnuc_hpc: best virus score per predicted sequence",
                        "xlab": "best virus score", "ylab": "Sequences", "xmin": 0, "xmax": 1,
                        "ymin": 0},
            "data": data}


def documents(accounts: Sequence[Mapping], histograms: Sequence[Histogram],
              profile: str) -> dict[str, dict]:
    """Each part's custom-content document (part -> JSON-able dict), samples in order."""
    return {"general_stats": general_stats(accounts), "calls": calls(accounts, profile),
            "best_virus_score": best_virus_score(accounts, histograms, profile)}
