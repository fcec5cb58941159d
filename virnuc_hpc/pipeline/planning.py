"""A run's plan as a request: what the command line (or a workflow, or a notebook) asks for,
settled for where the tasks run and planned, or resumed when RUN already holds the same."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

from ..core.config import RunConfig
from ..core.errors import UserError
from ..core.rundir import RunDir
from ..executors import backend
from ..executors.profiles import Profile
from ..plan import Plan, load_plan, plan_input, study_fingerprint
from ..plan.devices import Settled, Target, local_target
from ..plan.samples import Study
from ..plan.settle import settle_config


@dataclass(frozen=True)
class PlanRequest:
    """The inputs and options of a run, as given (None: not given, settled at plan)."""

    study: Study
    chunk_size: int = 500
    models: str = "real"
    shards: int | None = None
    sequences_per_shard: int | None = None
    task_minutes: float | None = None
    config_file: str | os.PathLike | None = None
    options: Mapping[str, object] = field(default_factory=dict)  # RunConfig's, as flags give

    def settle(self, target: Target | None,
               recorded: RunConfig | None = None) -> tuple[RunConfig, Settled]:
        """The run's options for `target`: the config file, the flags over it, the rest
        settled (`recorded`: a planned run's, which `auto` keeps)."""
        return settle_config(self.config_file, target, recorded, **self.options)

    def identity(self, config: RunConfig) -> dict:
        """What the run's fingerprint covers besides the inputs."""
        from ..models.cache import profile_fingerprints

        return {"chunk_size": self.chunk_size, "profile": self.models, "config": config,
                "model_identities": profile_fingerprints(self.models, self.chunk_size)}


def target_for(request: PlanRequest, profile: Profile | None = None,
               parallel: int | None = None) -> Target:
    """Where the tasks will run: the backend of `profile`, or this machine."""
    if profile is None:
        return local_target(parallel, request.task_minutes)
    return backend(profile.executor).target(profile, request.task_minutes)


def make_plan(request: PlanRequest, run_dir: str | os.PathLike, target: Target,
              dry_run: bool = False) -> Plan:
    """Plan the request in `run_dir` for `target` (nothing written on a dry run)."""
    config, settled = request.settle(target)
    return plan_input(request.study, run_dir, shards=request.shards,
                      sequences_per_shard=request.sequences_per_shard, dry_run=dry_run,
                      target=target, precision_note=settled.why, **request.identity(config))


def same_run(request: PlanRequest, run_dir: str | os.PathLike) -> bool:
    """Whether RUN's plan is of these inputs, models and options (the files are hashed,
    not read again); `--precision auto` accepts the precision the plan settled."""
    plan = load_plan(run_dir)
    config, _ = request.settle(None, recorded=plan.config)
    return study_fingerprint(request.study, **request.identity(config)) == plan.fingerprint


def plan_or_resume(request: PlanRequest, run_dir: str | os.PathLike, target: Target,
                   dry_run: bool = False, flag: str = "--run-dir",
                   again: str = "continue this one") -> Plan:
    """RUN's plan when it is of the same inputs, models and options; a new plan when RUN
    has none; refused (naming `flag`) when RUN holds another run."""
    if not RunDir(run_dir).plan.exists():
        return make_plan(request, run_dir, target, dry_run)
    if not same_run(request, run_dir):
        raise UserError(f"{run_dir} holds a run of other inputs, models or options; give a new "
                        f"{flag} (or the same arguments to {again})")
    return load_plan(run_dir)


def plan_for(request: PlanRequest, run_dir: str | os.PathLike, profile: Profile | None = None,
             dry_run: bool = False) -> Plan:
    """`plan`: the request planned in RUN for the tasks of `profile` (its backend's nodes),
    or of this machine."""
    return make_plan(request, run_dir, target_for(request, profile), dry_run)
