"""`virnuc-hpc models fetch|verify|list`: fill, check and show the model cache."""

from __future__ import annotations

import sys

from ..errors import ConfigError, UserError
from ..models import ModelCache, get_spec, resolve_profile
from ..models.registry import CHUNK_SIZES, PROFILES, REGISTRY


def _selection_args(p, default_profile: str | None) -> None:
    p.add_argument("--profile", choices=PROFILES, default=default_profile,
                   help="every model of this profile (both chunk sizes unless --chunk-size)")
    p.add_argument("--chunk-size", type=int, choices=CHUNK_SIZES, action="append",
                   help="classifier(s) to include with --profile (repeatable)")
    p.add_argument("--model", action="append", metavar="NAME",
                   help="a registry name or any fair-esm model name (repeatable)")
    p.add_argument("--cache", metavar="DIR", help="cache root (default: $VIRNUC_HPC_CACHE or "
                                                  "~/.cache/virnuc_hpc)")


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="fetch, verify and list cached models",
                       description="The model cache: fetch on a machine with internet, then "
                                   "share it read-only with every task.")
    actions = p.add_subparsers(dest="models_action", required=True, metavar="ACTION")
    fetch = actions.add_parser("fetch", help="download (real) or generate (tiny) models")
    _selection_args(fetch, "real")
    fetch.add_argument("--repair", action="store_true",
                       help="re-fetch the files of an entry that fails verification")
    verify = actions.add_parser("verify", help="re-hash cached models against their MANIFEST")
    _selection_args(verify, None)
    listing = actions.add_parser("list", help="show known and cached models, sizes, state")
    listing.add_argument("--cache", metavar="DIR")
    p.set_defaults(func=run)


def selected_specs(args, cache: ModelCache) -> list:
    if args.model:
        return [get_spec(name) for name in args.model]
    if args.profile is None:
        return [get_spec(name) for name in cache.entries()]
    specs = []
    for chunk in args.chunk_size or CHUNK_SIZES:
        for spec in resolve_profile(args.profile, chunk).specs():
            if spec not in specs:
                specs.append(spec)
    return specs


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def run(args) -> int:
    cache = ModelCache(args.cache)
    return {"fetch": _fetch, "verify": _verify, "list": _list}[args.models_action](args, cache)


def _fetch(args, cache: ModelCache) -> int:
    for spec in selected_specs(args, cache):
        path = cache.fetch(spec, repair=args.repair)
        note = "" if spec.biologically_meaningful else " (tiny: not biologically meaningful)"
        print(f"{spec.name}\t{path}{note}")
    return 0


def _verify(args, cache: ModelCache) -> int:
    failed = 0
    for spec in selected_specs(args, cache):
        try:
            cache.verify(spec)
            print(f"{spec.name}\tverified")
        except UserError as exc:
            failed += 1
            print(f"{spec.name}\tFAILED\t{exc}")
    if failed:
        print(f"{failed} model(s) failed verification", file=sys.stderr)
    return 1 if failed else 0


def _list(args, cache: ModelCache) -> int:
    names = sorted(set(REGISTRY) | set(cache.entries()))
    print(f"# cache: {cache.root}")
    print("name\tkind\tstate\tsize\tsource")
    for name in names:
        try:
            spec = get_spec(name)
        except ConfigError:
            print(f"{name}\t?\tunknown entry\t-\t-")
            continue
        status = cache.status(spec)
        print(f"{name}\t{spec.kind}\t{status.state}\t{_size(status.size)}\t{spec.source}")
    return 0
