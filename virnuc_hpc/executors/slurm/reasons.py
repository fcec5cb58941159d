"""SLURM's reasons for a pending job (squeue `%r`), in plain words, and which of them never clear.

A reason like `Resources` or `Priority` clears by itself; `PartitionConfig`, `PartitionTimeLimit`,
`InvalidAccount`, `QOSMaxGRESPerJob`... never do: the job must be cancelled and submitted again
with other flags. For those `note` says why and which flags to change; `misfit` (the request
check of slurm_check, when it refused) replaces the generic why with the numbers.
"""

from __future__ import annotations

import re

# -- clear by themselves: a short gloss ---------------------------------------------------------
PASSING = {
    "None": "just submitted, not scheduled yet",
    "Resources": "waits for a node with free CPUs, memory or GPUs",
    "Priority": "jobs of higher priority go first",
    "Dependency": "waits for the jobs it depends on",
    "BeginTime": "waits for its start time",
    "JobArrayTaskLimit": "the array runs at most array_parallelism tasks at once",
    "Licenses": "waits for licenses",
    "Reservation": "waits for its reservation",
    "ReqNodeNotAvail": "a node it needs is down, drained or reserved",
    "NodeDown": "a node it needs is down",
    "Prolog": "its prolog script is running",
    "Cleaning": "waits for a previous run of the job to be cleaned up",
    "JobHeldUser": "held by its owner: `scontrol release JOBID`",
    "JobHeldAdmin": "held by an administrator",
    "JobHoldMaxRequeue": "held after too many requeues: `scontrol release JOBID`",
}

# -- never clear: why, and what to change ----------------------------------------------------
NEVER = {
    "PartitionConfig": ("asks for more than the partition's nodes or limits have",
                        "lower --cpus-per-task / --mem / --gpus-per-task or give another "
                        "--partition"),
    "PartitionNodeLimit": ("asks for more nodes than the partition allows",
                           "give another --partition"),
    "PartitionTimeLimit": ("asks for more time than the partition's MaxTime",
                           "lower --time or give another --partition"),
    "MaxMemPerLimit": ("asks for more memory than the partition's MaxMemPerNode/MaxMemPerCPU",
                       "lower --mem or give another --partition"),
    "PartitionDown": ("its partition is down",
                      "give another --partition, or ask the administrators"),
    "PartitionInactive": ("its partition takes no jobs", "give another --partition"),
    "BadConstraints": ("no node has the CPUs, memory, GPUs or features it asks for",
                       "lower --cpus-per-task / --mem / --gpus-per-task"),
    "InvalidAccount": ("its account does not exist or is not yours", "give another --account"),
    "InvalidQOS": ("its QOS does not exist or is not yours", "give another --qos"),
    "AccountNotAllowed": ("the partition does not take its account",
                          "give another --account or --partition"),
    "QOSNotAllowed": ("the partition does not take its QOS", "give another --qos or --partition"),
    "DependencyNeverSatisfied": ("the jobs it depends on ended in a way it excludes",
                                 "cancel it"),
}
# QOS or association limits one task alone exceeds (PerUser/PerAccount/Grp limits clear as
# other jobs end): QOSMaxGRESPerJob, AssocMaxCpuPerJobLimit, QOSMaxWallDurationPerJobLimit...
TASK_LIMIT = re.compile(r"(QOS|Assoc)(Max\w*Per(Job|Node)\w*|Min\w+)")
SHARED_LIMIT = re.compile(r"(QOS|Assoc|Max)\w*(PerUser|PerAccount|Grp|Limit)\w*")
SHARED = "a QOS or association limit shared with your other jobs; clears as they end"
# clear by themselves unless no node of the partition can ever run the task
NEVER_IF_MISFIT = ("ReqNodeNotAvail", "NodeDown")
# what the request check (request vs partition and nodes) can spell out with numbers
FIT_REASONS = ("PartitionConfig", "PartitionTimeLimit", "MaxMemPerLimit", "BadConstraints",
               "PartitionInactive", *NEVER_IF_MISFIT)
QOS_LIMIT = ("one task alone exceeds a QOS or association limit",
             "lower --cpus-per-task / --mem / --gpus-per-task / --time or give another --qos")


def word(reason: str) -> str:
    """`ReqNodeNotAvail, UnavailableNodes:n1` -> `ReqNodeNotAvail`; `` for no reason."""
    first = reason.strip().split(",")[0].split()
    return first[0] if first else ""


def worth_checking(reason: str) -> bool:
    """Whether the request check (slurm_check) can tell more about this reason."""
    return word(reason) in FIT_REASONS


def never_clears(reason: str, misfit: str = "") -> bool:
    """True for reasons that stay until the job is changed (`misfit`: the check's refusal)."""
    w = word(reason)
    return w in NEVER or bool(TASK_LIMIT.fullmatch(w)) or (w in NEVER_IF_MISFIT and bool(misfit))


def note(reason: str, job_id: str, misfit: str = "") -> str:
    """The plain-words line `status` shows for a pending job."""
    w = word(reason)
    if never_clears(reason, misfit):
        why, fix = NEVER.get(w, QOS_LIMIT)
        text = misfit if misfit and w in FIT_REASONS else f"{why}: {fix}"
        return f"SLURM job {job_id} will not start by itself ({w}): {text} " \
               f"(`scancel {job_id.split('_')[0]}`, then submit again)"
    if not w:
        return f"queued as SLURM job {job_id}"
    gloss = PASSING.get(w) or (SHARED if SHARED_LIMIT.fullmatch(w) else "")
    rest = reason.strip()[len(w):].lstrip(", ")
    return f"queued as SLURM job {job_id}: {w}" + (f" ({gloss})" if gloss else "") + \
        (f" [{rest}]" if rest else "")
