"""The `virnuc-hpc` command: a thin parser over the library (`parser -> run(args)`).

Each subcommand lives in its own module exposing `add_parser(subparsers)`; the parser it
adds sets `func=run`. Core modules never import this package.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..core.errors import UserError

SUBCOMMANDS = [
    "translate", "plan", "export-shards", "run-task", "run", "reduce", "status", "resubmit",
    "predict", "embed", "bench", "models", "submit", "report",
]


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The full parser; given `argv`, only the subcommand it names is loaded (each module
    imports what it needs, so a command that runs no model starts at once)."""
    parser = argparse.ArgumentParser(
        prog="virnuc-hpc", description="VirNucPro viral sequence identification at cluster scale."
    )
    parser.add_argument("--version", action=_Versions,
                        help="print the versions of virnuc-hpc, python, torch, transformers and "
                             "fair-esm (nf-core's versions.yml) and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    named = next((a for a in argv or [] if not a.startswith("-")), None)
    for name in [named] if named in SUBCOMMANDS else SUBCOMMANDS:
        importlib.import_module(f".{name.replace('-', '_')}_cmd", __name__).add_parser(sub)
    return parser


class _Versions(argparse.Action):
    """--version: versions.yml's text, read from package metadata (nothing heavy imported)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from ..core.versions import versions_yaml

        print(versions_yaml(), end="")
        parser.exit()


def main(argv: list[str] | None = None) -> int:
    from ..core.fsio import deny_world_write

    deny_world_write()  # nothing this command (or what it starts) creates is world-writable
    args = build_parser(sys.argv[1:] if argv is None else argv).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:  # huggingface_hub's HTTP client logs every request at INFO
        for name in ("httpx", "httpx2"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"virnuc-hpc {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # the commands name the shard where they can; never a traceback
        print(f"virnuc-hpc {args.command}: error: {exc}; fix the file system (space, "
              f"permissions), then rerun `virnuc-hpc {' '.join(map(str, argv or sys.argv[1:]))}`",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"virnuc-hpc {args.command}: interrupted", file=sys.stderr)
        return 130
