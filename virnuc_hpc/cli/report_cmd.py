"""`virnuc-hpc report`: write RUN/results/report.html and prediction.png from a reduced run."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write the run report (report.html, prediction.png)",
                       description="One self-contained HTML page (accounting, calls, scores, "
                                   "kept frames, shard timeline, models, options) and "
                                   "VirNucPro's prediction figure, in RUN/results/. `reduce` "
                                   "writes it too; run this to redraw or pick sequences.")
    p.add_argument("run_dir", metavar="RUN")
    pick = p.add_mutually_exclusive_group()
    pick.add_argument("--sequences", metavar="ID,...",
                      help="draw these sequences in prediction.png, in this order "
                           "(SAMPLE/ID in a run of several samples)")
    pick.add_argument("--top", type=int, metavar="N",
                      help="draw the N longest predicted sequences (default 5)")
    p.set_defaults(func=run)


def parse_ids(text: str) -> list[str]:
    from ..core.errors import ConfigError

    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise ConfigError("--sequences needs at least one ID (ID,ID,...)")
    return ids


def run(args) -> int:
    from ..views.report import write_report

    sequences = parse_ids(args.sequences) if args.sequences is not None else None
    files = write_report(args.run_dir, sequences=sequences, top=args.top)
    print(f"report: {files.html}\nprediction figure: {files.figure}")
    return 0
