"""slurm_reasons: SLURM's pending reasons in plain words; which never clear."""

from __future__ import annotations

import pytest

from virnuc_hpc.executors.slurm.reasons import never_clears, note, word, worth_checking

MISFIT = "asks for 8 CPUs per task; the largest node of partition debug has 2 CPUs: " \
         "lower --cpus-per-task"


def test_the_reason_word_is_what_squeue_prints_before_its_details():
    assert word("ReqNodeNotAvail, UnavailableNodes:gpu[01-02]") == "ReqNodeNotAvail"
    assert word(" Resources ") == "Resources" and word("") == ""


@pytest.mark.parametrize("reason, gloss", [
    ("Resources", "waits for a node with free CPUs, memory or GPUs"),
    ("Priority", "jobs of higher priority go first"),
    ("Dependency", "waits for the jobs it depends on"),
    ("JobArrayTaskLimit", "the array runs at most array_parallelism tasks at once"),
    ("QOSMaxGRESPerUser", "a QOS or association limit shared with your other jobs; clears as "
                          "they end"),
    ("AssocGrpCpuLimit", "a QOS or association limit shared with your other jobs; clears as "
                         "they end"),
])
def test_passing_reasons_are_shown_with_a_gloss(reason, gloss):
    assert not never_clears(reason) and not never_clears(reason, MISFIT)
    assert note(reason, "5_2") == f"queued as SLURM job 5_2: {reason} ({gloss})"


def test_unknown_or_missing_reasons_are_shown_as_they_are():
    assert note("SomethingNew", "5_2") == "queued as SLURM job 5_2: SomethingNew"
    assert note("", "5_2") == "queued as SLURM job 5_2"
    assert note("ReqNodeNotAvail, UnavailableNodes:n1", "5_2") == \
        "queued as SLURM job 5_2: ReqNodeNotAvail (a node it needs is down, drained or " \
        "reserved) [UnavailableNodes:n1]"


@pytest.mark.parametrize("reason, text", [
    ("PartitionConfig", "asks for more than the partition's nodes or limits have: lower "
                        "--cpus-per-task / --mem / --gpus-per-task or give another --partition"),
    ("PartitionTimeLimit", "asks for more time than the partition's MaxTime: lower --time or "
                           "give another --partition"),
    ("InvalidAccount", "its account does not exist or is not yours: give another --account"),
    ("QOSMaxGRESPerJob", "one task alone exceeds a QOS or association limit: lower "
                         "--cpus-per-task / --mem / --gpus-per-task / --time or give another "
                         "--qos"),
    ("AssocMaxWallDurationPerJobLimit", "one task alone exceeds a QOS or association limit: "
                                        "lower --cpus-per-task / --mem / --gpus-per-task / "
                                        "--time or give another --qos"),
])
def test_reasons_that_never_clear_say_what_to_change(reason, text):
    assert never_clears(reason)
    assert note(reason, "5_2") == \
        f"SLURM job 5_2 will not start by itself ({reason}): {text} (`scancel 5`, then " \
        f"submit again)"


def test_the_request_check_gives_the_numbers_where_it_can():
    assert worth_checking("PartitionConfig") and worth_checking("ReqNodeNotAvail, x")
    assert not worth_checking("Resources") and not worth_checking("InvalidAccount")
    assert note("PartitionConfig", "5_2", MISFIT) == \
        f"SLURM job 5_2 will not start by itself (PartitionConfig): {MISFIT} (`scancel 5`, " \
        f"then submit again)"
    assert never_clears("ReqNodeNotAvail", MISFIT) and not never_clears("ReqNodeNotAvail")
    assert note("InvalidAccount", "9", MISFIT).startswith(
        "SLURM job 9 will not start by itself (InvalidAccount): its account does not exist")
