"""`virnuc-hpc submit`: check the request against the partition's nodes, plan (or reuse the
plan), then send the shards to SLURM as an array."""

from __future__ import annotations

from .options import add_input_arguments, add_plan_options, plan_request

OVERRIDES = (("--partition", str, "NAME"), ("--account", str, "NAME"), ("--qos", str, "NAME"),
             ("--time", str, "D-HH:MM:SS"), ("--gpus-per-task", int, "N"),
             ("--cpus-per-task", int, "N"), ("--mem", str, "SIZE"),
             ("--array-parallelism", int, "K"), ("--parallel", int, "K"),
             ("--image", str, "IMAGE.sif"), ("--cache", str, "DIR"))


def add_parser(sub) -> None:
    p = sub.add_parser("submit", help="plan and submit the shards as a SLURM array (+ reduce)",
                       description="One array task per shard with one GPU each, and a reduce "
                                   "job after the array (afterany). Profiles: jobs/*.yaml; "
                                   "options given here override the profile. Before anything "
                                   "is written or queued, the request (CPUs, memory, GPUs, "
                                   "time per task) is checked against the partition's nodes "
                                   "and limits (scontrol): a request no node could ever run "
                                   "is refused with one line naming the flags to lower "
                                   "(exit 2); a cluster that cannot be asked gets a warning.")
    add_input_arguments(p)
    add_plan_options(p)
    p.add_argument("--profile", default="slurm", metavar="NAME|FILE.yaml",
                   help="submit profile: slurm, apptainer, local, or a YAML file")
    for flag, kind, metavar in OVERRIDES:
        p.add_argument(flag, type=kind, default=None, metavar=metavar, help="overrides the profile")
    p.add_argument("--wait", action="store_true",
                   help="stay until the array and the reduce job ended (SLURM is polled every "
                        "30 s), then exit 0 only if RUN/results/ was published from every shard "
                        "(for workflow managers: Snakemake, Nextflow); a failed task exits 1 "
                        "naming it and the resubmit command")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan table, the sbatch script(s) and the request check's "
                        "outcome (ok / warning / refused); submit and write nothing; exit 2 "
                        "when the real submit would be refused")
    p.set_defaults(func=run)


def profile_from_args(args):
    from ..executors.profiles import load_profile

    overrides = {flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_"))
                 for flag, _, _ in OVERRIDES}
    return load_profile(args.profile, **overrides)


def run(args) -> int:
    from ..pipeline.submit import submit

    profile = profile_from_args(args)   # a bad profile is named before the inputs are read
    return submit(plan_request(args), args.run_dir, profile, wait=args.wait,
                  dry_run=args.dry_run)
