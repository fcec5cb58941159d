"""`virnuc-hpc models fetch|verify|list|check-reference`: fill, check and show the model cache,
and compare the native DNABERT-S with its published code."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from ..core.errors import ConfigError, UserError
from ..core.fsio import sha256_file
from ..models.cache import ModelCache, check_revision
from ..models.registry import (CHUNK_SIZES, PROFILES, REGISTRY, get_spec, resolve_profile,
                               spec_from_path)


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
                       help="re-fetch the files of an entry that fails verification (or, "
                            "with --revision, is at another revision)")
    fetch.add_argument("--revision", metavar="REV",
                       help="Hugging Face hub models only: the branch, tag or commit to fetch "
                            "(default: the registry's; the resolved commit is recorded and "
                            "later repairs fetch it)")
    verify = actions.add_parser("verify", help="re-hash cached models against their MANIFEST")
    _selection_args(verify, None)
    listing = actions.add_parser("list", help="show known and cached models, sizes, state")
    listing.add_argument("--cache", metavar="DIR")
    _check_reference_args(actions)
    install = actions.add_parser(
        "check-install", help="predict VirNucPro's reference input and compare with the original",
        description="Predict the original VirNucPro's own reference input (2 sequences, 4 kept "
                    "frames, 500-bp model; bundled with the package) with a model profile, and "
                    "compare with what the original tool wrote: same frames, same calls, scores "
                    "within 1e-4, same highest-score file. Exit 1 otherwise. Models come from "
                    "the cache ($VIRNUC_HPC_CACHE).")
    install.add_argument("--models", default="real", choices=PROFILES,
                         help="profile to check (tiny cannot match: its weights are random)")
    install.add_argument("--out", metavar="DIR", help="run directory to keep (default: a "
                                                      "temporary one, removed afterwards)")
    install.add_argument("--cache", metavar="DIR", help="model cache (exported to the tasks "
                                                        "as VIRNUC_HPC_CACHE)")
    p.set_defaults(func=run)


def _check_reference_args(actions) -> None:
    check = actions.add_parser(
        "check-reference", help="compare native DNABERT-S with the published model code",
        description="Run the published DNABERT-S code (bert_layers.py and siblings, e.g. from a "
                    "zhihan1996/DNABERT-S hub snapshot) one sequence at a time as VirNucPro does, "
                    "and the native model in padded batches, on the same weights; exit 1 if "
                    "any mean embedding differs by more than the tolerance. This is the only "
                    "command that runs the published code, and only from the folder you name.")
    check.add_argument("--code", required=True, metavar="DIR",
                       help="folder holding the published bert_layers.py")
    check.add_argument("--model", default="dnabert-s",
                       help="cached DNABERT model whose weights and tokenizer to use")
    check.add_argument("--model-path", metavar="DIR", help="a DNABERT-style folder instead")
    check.add_argument("--random-weights", action="store_true",
                       help="replace the weights by seeded random ones of the same shapes")
    check.add_argument("--sequences", type=int, default=24, help="random DNA sequences to embed")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--tolerance", type=float, default=None,
                       help="max abs difference of mean embeddings (default 1e-4, "
                            "docs/spec-models.md)")
    check.add_argument("--cache", metavar="DIR")


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
    actions = {"fetch": _fetch, "verify": _verify, "list": _list,
               "check-reference": _check_reference, "check-install": _check_install}
    return actions[args.models_action](args, cache)


def _fetch(args, cache: ModelCache) -> int:
    specs = selected_specs(args, cache)
    for spec in specs:
        check_revision(spec, args.revision)  # before fetching anything
    for spec in specs:
        path = cache.fetch(spec, repair=args.repair, revision=args.revision)
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


def known_names() -> list[str]:
    """Every model of the known profiles (both chunk sizes), of the registry, by name."""
    in_profiles = {spec.name for profile in PROFILES for chunk in CHUNK_SIZES
                   for spec in resolve_profile(profile, chunk).specs()}
    return sorted(in_profiles | set(REGISTRY))


def _list(args, cache: ModelCache) -> int:
    names = sorted(set(known_names()) | set(cache.entries()))
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


def _check_reference(args, cache: ModelCache) -> int:
    from ..models import reference

    tolerance = reference.TOLERANCE if args.tolerance is None else args.tolerance
    spec = get_spec(args.model)
    if spec.kind != "dnabert":
        raise ConfigError(f"model {args.model!r} is a {spec.kind}; check-reference compares "
                          "DNABERT models (e.g. dnabert-s, tiny-dnabert-s)")
    if args.model_path:
        spec = spec_from_path(args.model_path, "dnabert")
    weights = cache.prewarm(spec)
    report = reference.check_dnabert(args.code, weights, random_weights=args.random_weights,
                                     seed=args.seed, count=args.sequences,
                                     tolerance=tolerance)
    code = Path(args.code) / f"{reference.PUBLISHED_MODULE}.py"
    print(f"published code: {code} (sha256 {sha256_file(code)[:16]})")
    print(f"weights: {weights}" + (f", replaced by random (seed {args.seed})"
                                   if args.random_weights else ""))
    print(f"tokenizer: {_TOKENS[report.tokens_equal]}")
    verdict = "OK" if report.ok else "FAILED"
    print(f"{report.sequences} random DNA sequences: max abs difference of mean embeddings "
          f"{report.max_abs:.3g} (worst {report.worst}); tolerance {report.tolerance:g}: {verdict}")
    return 0 if report.ok else 1


_TOKENS = {True: "token ids equal to transformers' PreTrainedTokenizerFast",
           False: "token ids DIFFER from transformers' PreTrainedTokenizerFast",
           None: "not compared (transformers not installed)"}


def _check_install(args, cache: ModelCache) -> int:
    from ..pipeline.selfcheck import check_install

    os.environ["VIRNUC_HPC_CACHE"] = str(cache.root)  # the tasks run as subprocesses
    with tempfile.TemporaryDirectory(prefix="virnuc-check-") as scratch:
        comparison, same_highest = check_install(args.out or Path(scratch) / "run", args.models)
    print(f"VirNucPro reference input, 500-bp model, profile {args.models}:")
    print(f"{'frame':28}{'original':20}{'ours':20}|diff|")
    for frame, theirs, ours, diff in comparison.rows:
        print(f"{frame:28}{theirs:20}{ours:20}{diff:.2g}")
    for problem in comparison.problems:
        print(f"  {problem}")
    print(f"highest-score file: {'equal to' if same_highest else 'DIFFERS from'} the original's")
    ok = comparison.ok and same_highest
    print(f"max score difference {comparison.max_diff:.3g} (tolerance "
          f"{comparison.tolerance:g}): {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1
