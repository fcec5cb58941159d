"""Could any node of the partition ever run one array task? Asked of `scontrol` before submitting.

A task asks for `cpus_per_task` CPUs, `mem` memory, `gpus_per_task` GPUs and `time` minutes
(the profile). SLURM accepts some requests that no node can hold and leaves them pending for
ever (`PartitionConfig`, `PartitionTimeLimit`, `MaxMemPerLimit`); `check_profile` compares the
request with the partition (the profile's, else the cluster's default: its State, MaxTime,
MaxCPUsPerNode, MaxMemPerNode, MaxMemPerCPU) and its nodes (CPUs, RealMemory, gres GPUs):

    fit = check_profile(profile)       # Fit("refused", "asks for 8 CPUs ...: lower ...")
    fit.require()                      # raises RequestDoesNotFit when refused

A cluster that cannot be asked (no scontrol, no permission, no controller) gives a `warning`,
never a refusal. The text parsed is `scontrol show partition -o` and `scontrol show node -o`.
"""

from __future__ import annotations

import logging
import math
import re
import subprocess
from dataclasses import dataclass

from ...plan.devices import gres_types
from ...core.errors import ConfigError, UserError
from ..profiles import Profile, parse_time_minutes

log = logging.getLogger(__name__)

OK, WARNING, REFUSED = "ok", "warning", "refused"
UNLIMITED = ("UNLIMITED", "INFINITE", "NONE", "N/A", "")
CLOSED = ("INACTIVE", "DRAIN")        # sbatch refuses new jobs
SIZE_MB = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 ** 2}


class RequestDoesNotFit(UserError):
    """No node of the partition could ever run one task as asked; the message names the flags."""


@dataclass(frozen=True)
class Fit:
    outcome: str      # OK, WARNING (could not check, or the partition is down) or REFUSED
    line: str

    def require(self) -> None:
        """Raise RequestDoesNotFit when refused; log a warning when it could not be checked."""
        if self.outcome == REFUSED:
            raise RequestDoesNotFit(self.line)
        if self.outcome == WARNING:
            log.warning("%s", self.line)


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    state: str
    hidden: bool
    max_time: int | None          # minutes; None = unlimited
    max_cpus_per_node: int | None
    max_mem_per_node: int | None  # MB
    max_mem_per_cpu: int | None   # MB


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    mem: int                      # MB (RealMemory - MemSpecLimit)
    gpus: int
    partitions: tuple[str, ...]
    gres: str = ""


@dataclass(frozen=True)
class Capacity:
    """The most one task can get on one node of one partition (node and partition limits)."""

    node: str
    cpus: int
    mem: int
    gpus: int


# -- parsing ----------------------------------------------------------------------------------

def size_mb(text: str) -> int:
    """A SLURM size (`64G`, `16000M`, `16000`: MB without a suffix, `1T`, `512K`) -> MB."""
    match = re.fullmatch(r"(\d+)([KMGT]?)B?", text.strip(), re.IGNORECASE)
    if match is None:
        raise ValueError(f"not a SLURM size: {text!r}")
    return math.ceil(int(match[1]) * SIZE_MB[(match[2] or "M").upper()])


def limit(text: str | None, parse=int) -> int | None:
    """A partition limit; None when unlimited or absent."""
    if text is None or text.upper() in UNLIMITED:
        return None
    return parse(text)


def time_limit(text: str | None) -> int | None:
    """scontrol's MaxTime (`UNLIMITED`, `01:00:00`, `2-00:00:00`) -> minutes."""
    try:
        return limit(text, parse_time_minutes)
    except ConfigError as exc:
        raise ValueError(str(exc)) from exc


def fields(line: str) -> dict[str, str]:
    """`Key=Value` words of one `scontrol -o` line (words without `=` belong to a value with
    spaces, like OS=Linux 6.1 #1 SMP, and are skipped; the first Key wins)."""
    out: dict[str, str] = {}
    for word in line.split():
        key, eq, value = word.partition("=")
        if eq and key not in out:
            out[key] = value
    return out


def gpu_count(gres: str) -> int:
    """GPUs in a node's Gres: `gpu:2`, `gpu:a100:4(S:0-1),gpu:v100:2`, `(null)` -> 2, 6, 0."""
    return sum(count for _, count in gres_types(gres))


def parse_partitions(text: str) -> list[Partition]:
    return [_partition(f) for f in map(fields, text.splitlines()) if "PartitionName" in f]


def _partition(f: dict[str, str]) -> Partition:
    return Partition(name=f["PartitionName"], default=f.get("Default") == "YES",
                     state=f.get("State", "UP"), hidden=f.get("Hidden") == "YES",
                     max_time=time_limit(f.get("MaxTime")),
                     max_cpus_per_node=limit(f.get("MaxCPUsPerNode")),
                     max_mem_per_node=limit(f.get("MaxMemPerNode"), size_mb),
                     max_mem_per_cpu=limit(f.get("MaxMemPerCPU"), size_mb))


def parse_nodes(text: str) -> list[Node]:
    return [_node(f) for f in map(fields, text.splitlines()) if "NodeName" in f]


def _node(f: dict[str, str]) -> Node:
    spec = size_mb(f["MemSpecLimit"]) if f.get("MemSpecLimit", "").isdigit() else 0
    cpus = f.get("CPUEfctv") or f.get("CPUTot") or "0"
    return Node(name=f["NodeName"], cpus=int(cpus), mem=int(f.get("RealMemory", "0")) - spec,
                gpus=gpu_count(f.get("Gres", "")),
                partitions=tuple(p for p in f.get("Partitions", "").split(",") if p),
                gres=f.get("Gres", ""))


# -- the check --------------------------------------------------------------------------------

RESOURCES = {"cpus": "--cpus-per-task", "mem": "--mem", "gpus": "--gpus-per-task"}
ANOTHER = "give another --partition"


@dataclass(frozen=True)
class Ask:
    """One task's request, from the profile (mem 0: the cluster's default, which always fits)."""

    cpus: int
    mem: int
    gpus: int
    time: int
    mem_text: str = ""

    @classmethod
    def of(cls, profile: Profile) -> "Ask":
        return cls(cpus=profile.cpus_per_task or 1, mem=size_mb(profile.mem or "0"),
                   gpus=profile.gpus_per_task or 0, time=profile.time, mem_text=profile.mem or "")

    def words(self, keys) -> list[str]:
        words = {"cpus": _plural(self.cpus, "CPU"), "mem": self.mem_text,
                 "gpus": _plural(self.gpus, "GPU") if self.gpus else "",
                 "time": _hms(self.time)}
        return [words[k] for k in keys if words[k]]


@dataclass(frozen=True)
class Problem:
    """What is asked that the partition cannot give: `asks for ASKED; HAS: lower FLAGS`."""

    asked: list[str]
    has: str
    flags: list[str]


def check(profile: Profile, partitions: list[Partition], nodes: list[Node]) -> Fit:
    """Does one task of `profile` fit some node of its partition? (pure: parsed scontrol)."""
    part, refusal = _partition_of(profile.partition, partitions)
    if part is None or refusal:
        return Fit(REFUSED, refusal)
    ask = Ask.of(profile)
    caps = [_capacity(n, part) for n in nodes if part.name in n.partitions]
    if not caps:
        return Fit(REFUSED, f"partition {part.name} has no nodes: {ANOTHER}")
    problems = [p for p in (_resource_problem(ask, part, caps), _time_problem(ask, part)) if p]
    if problems:
        return Fit(REFUSED, _sentence(problems))
    if part.state != "UP":
        return Fit(WARNING, f"partition {part.name} is {part.state}: tasks wait until it is up "
                            f"again (ask the administrators, or {ANOTHER})")
    fits = sum(not _short(ask, c) for c in caps)
    return Fit(OK, f"{_and(ask.words(RESOURCES))} per task fit {fits} of {len(caps)} node(s) "
                   f"of partition {part.name}")


def _sentence(problems: list[Problem]) -> str:
    asked = [w for p in problems for w in p.asked]
    flags = [f for p in problems for f in p.flags]
    another = f" or {ANOTHER}" if ANOTHER in flags else ""
    flags = " / ".join(f for f in flags if f != ANOTHER)
    return f"asks for {_and(asked)} per task; {'; '.join(p.has for p in problems)}: " \
           f"lower {flags}{another}"


def _partition_of(name: str | None, partitions: list[Partition]) -> tuple[Partition | None, str]:
    """The partition asked for (else the default), or a refusal naming the valid ones."""
    if name is None:
        part = next((p for p in partitions if p.default), None)
        if part is None:
            return None, f"the cluster has no default partition: give --partition " \
                         f"({_valid(partitions)})"
    else:
        part = next((p for p in partitions if p.name == name), None)
        if part is None:
            return None, f"partition {name} does not exist: give --partition " \
                         f"({_valid(partitions)})"
    if part.state in CLOSED:
        others = [p for p in partitions if p.name != part.name]
        return part, f"partition {part.name} is {part.state} and takes no jobs: give another " \
                     f"--partition ({_valid(others)})"
    return part, ""


def _valid(partitions: list[Partition]) -> str:
    names = [p.name + (" (default)" if p.default else "") +
             (f" ({p.state})" if p.state != "UP" else "")
             for p in partitions if not p.hidden and p.state not in CLOSED]
    return "valid: " + (", ".join(names) or "none open")


def _capacity(node: Node, part: Partition) -> Capacity:
    cpus = min(node.cpus, part.max_cpus_per_node or node.cpus)
    mem = min(node.mem, part.max_mem_per_node or node.mem)
    if part.max_mem_per_cpu:          # SLURM raises a task's CPUs to cover its memory
        mem = min(mem, part.max_mem_per_cpu * cpus)
    return Capacity(node.name, cpus, mem, node.gpus)


def _short(ask: Ask, cap: Capacity) -> list[str]:
    """The resources `cap` has less of than `ask`."""
    return [k for k in RESOURCES if getattr(ask, k) > getattr(cap, k)]


def _resource_problem(ask: Ask, part: Partition, caps: list[Capacity]) -> Problem | None:
    if any(not _short(ask, c) for c in caps):
        return None
    most = Capacity("", *(max(getattr(c, k) for c in caps) for k in RESOURCES))
    if short := _short(ask, most):     # nothing in the partition is that large
        one = any(all(getattr(c, k) == getattr(most, k) for k in short) for c in caps)
        where = f"the largest node of partition {part.name} has" if one else \
            f"the nodes of partition {part.name} have at most"
        return Problem(ask.words(short), f"{where} {_has(most, short, part)}",
                       [RESOURCES[k] for k in short])
    best = min(caps, key=lambda c: (len(_short(ask, c)), -c.gpus, -c.cpus, -c.mem))
    short = _short(ask, best)         # heterogeneous nodes: each has some, none has all
    return Problem(ask.words(RESOURCES), f"no node of partition {part.name} has all of them "
                   f"(the closest, {best.node}, has {_has(best, short, part)})",
                   [RESOURCES[k] for k in short] + [ANOTHER])


def _has(cap: Capacity, keys: list[str], part: Partition) -> str:
    words = {"cpus": _plural(cap.cpus, "CPU"), "mem": f"{cap.mem}M",
             "gpus": _plural(cap.gpus, "GPU")}
    limits = [f"MaxCPUsPerNode={part.max_cpus_per_node}"
              if "cpus" in keys and cap.cpus == part.max_cpus_per_node else "",
              f"MaxMemPerNode={part.max_mem_per_node}M"
              if "mem" in keys and cap.mem == part.max_mem_per_node else "",
              f"MaxMemPerCPU={part.max_mem_per_cpu}M"
              if "mem" in keys and part.max_mem_per_cpu else ""]
    limits = [x for x in limits if x]
    return _and([words[k] for k in keys]) + (f" (partition limit {', '.join(limits)})"
                                             if limits else "")


def _time_problem(ask: Ask, part: Partition) -> Problem | None:
    if part.max_time is None or ask.time <= part.max_time:
        return None
    return Problem(ask.words(["time"]), f"partition {part.name} allows at most "
                   f"{_hms(part.max_time)} (MaxTime)", ["--time", ANOTHER])


def _hms(minutes: int) -> str:
    days, rest = divmod(minutes, 24 * 60)
    return (f"{days}-" if days else "") + f"{rest // 60:02d}:{rest % 60:02d}:00"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# -- asking the cluster -----------------------------------------------------------------------

class Unavailable(Exception):
    """scontrol is missing, refused or answered nothing usable."""


def scontrol(*argv: str, timeout_s: float = 30) -> str:
    try:
        done = subprocess.run(["scontrol", *argv], capture_output=True, text=True,
                              timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"scontrol {' '.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise Unavailable(f"scontrol {' '.join(argv)}: {why}")
    return done.stdout


def cluster() -> tuple[list[Partition], list[Node]]:
    """The cluster's partitions and nodes (raises Unavailable)."""
    try:
        partitions = parse_partitions(scontrol("--all", "show", "partition", "-o"))
        nodes = parse_nodes(scontrol("show", "node", "-o"))
    except (ValueError, KeyError) as exc:
        raise Unavailable(f"unexpected scontrol output ({exc})") from exc
    if not partitions:
        raise Unavailable("scontrol shows no partitions")
    return partitions, nodes


def check_profile(profile: Profile) -> Fit:
    """`check` against the live cluster; a WARNING when the cluster cannot be asked."""
    try:
        return check(profile, *cluster())
    except Unavailable as exc:
        return Fit(WARNING, f"could not check the request against the cluster's nodes ({exc})")


def partition_gres(name: str | None) -> list[str]:
    """The Gres of every node of partition `name` (else the default one); [] when the
    cluster cannot be asked."""
    try:
        partitions, nodes = cluster()
    except Unavailable as exc:
        log.info("GPU types of the partition not known (%s)", exc)
        return []
    part, _ = _partition_of(name, partitions)
    return [n.gres for n in nodes if part is not None and part.name in n.partitions]
