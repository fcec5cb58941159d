"""The suite's counts: every fault trial ends recovered, detected or lost (see harness.py)."""

from __future__ import annotations

from collections import Counter

OUTCOMES = ("recovered", "detected", "lost")
counts: Counter = Counter()
lost: list[str] = []


def record(name: str, outcome: str, why: str = "", kill: bool = False) -> str:
    """Count one trial (`kill`: a SIGKILL trial); a lost one is remembered with why."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    counts["trials"] += 1
    counts["kills"] += kill
    counts[outcome] += 1
    if outcome == "lost":
        lost.append(f"{name}: {why}")
    return outcome


def line() -> str:
    return (f"trials {counts['trials']}, recovered {counts['recovered']}, "
            f"detected {counts['detected']}, lost {counts['lost']}")
