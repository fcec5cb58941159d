"""slurm_check: a task's request against the partition's nodes and limits, on captured scontrol
text (data/scontrol-show-*.txt: the SLURM 22.05 test cluster with one 2-CPU node of 16000M and
five partitions; `-mixed`: a hand-made cluster of CPU and GPU nodes in the same format), then
with faked scontrol/sbatch commands through `submit`. The real cluster: test_slurm.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from virnuc_hpc.executors.slurm.check import (OK, REFUSED, WARNING, Fit, RequestDoesNotFit,
                                              check, check_profile, fields, gpu_count,
                                              parse_nodes, parse_partitions, size_mb, time_limit)
from virnuc_hpc.executors.profiles import load_profile, profile_from_dict

from tests.executors.fake_slurm import DATA, DENIED


def captured(name: str) -> str:
    return (DATA / f"scontrol-show-{name}.txt").read_text()


TEST_CLUSTER = (parse_partitions(captured("partition")), parse_nodes(captured("node")))
MIXED = (parse_partitions(captured("partition-mixed")), parse_nodes(captured("node-mixed")))


def ask(**keys):
    base = {"executor": "slurm", "time": 30, "gpus_per_task": 1, "cpus_per_task": 1,
            "mem": "1G"}
    return profile_from_dict({**base, **keys}, name="test")


def test_sizes_times_and_gres_are_read_as_slurm_writes_them():
    assert [size_mb(s) for s in ("64G", "16000M", "16000", "1T", "512K", "2gb", "0")] == \
        [65536, 16000, 16000, 1048576, 1, 2048, 0]
    with pytest.raises(ValueError):
        size_mb("lots")
    assert [time_limit(t) for t in ("UNLIMITED", "01:00:00", "2-00:00:00", "00:00:30")] == \
        [None, 60, 2880, 1]
    assert [gpu_count(g) for g in ("gpu:2", "gpu:a100:4(S:0-1),gpu:v100:2", "(null)",
                                   "gpu:a100:4(S:0,1)", "mps:200,gpu:1", "")] == [2, 6, 0, 4, 1, 0]
    line = "NodeName=n1 OS=Linux 6.1 #1 SMP RealMemory=8 Reason=a RealMemory=9 [root]"
    assert fields(line) == {"NodeName": "n1", "OS": "Linux", "RealMemory": "8", "Reason": "a"}


def test_captured_scontrol_text_is_parsed():
    partitions, nodes = TEST_CLUSTER
    assert [(p.name, p.default, p.state, p.max_time) for p in partitions] == [
        ("debug", True, "UP", None), ("short", False, "UP", 60), ("off", False, "DOWN", None),
        ("gone", False, "INACTIVE", None), ("percpu", False, "DRAIN", 2880)]
    short, percpu = partitions[1], partitions[4]
    assert (short.max_cpus_per_node, short.max_mem_per_node) == (1, 1000)
    assert (percpu.max_mem_per_cpu, percpu.max_mem_per_node) == (500, None)
    assert partitions[3].hidden and not partitions[0].hidden
    [node] = nodes
    assert (node.cpus, node.mem, node.gpus) == (2, 16000, 2)
    assert node.partitions == ("debug", "short", "off", "gone", "percpu")
    gpu01 = parse_nodes(captured("node-mixed"))[2]
    assert (gpu01.cpus, gpu01.mem, gpu01.gpus) == (24, 256000 - 8000, 4)   # minus MemSpecLimit


def test_the_default_profile_on_small_nodes_is_refused_with_the_flags_to_lower():
    fit = check(load_profile("slurm"), *TEST_CLUSTER)       # 8 CPUs, 64G, default partition
    assert fit == Fit(REFUSED, "asks for 8 CPUs and 64G per task; the largest node of partition "
                               "debug has 2 CPUs and 16000M: lower --cpus-per-task / --mem")
    with pytest.raises(RequestDoesNotFit, match="^asks for 8 CPUs and 64G per task; "):
        fit.require()
    assert check(ask(gpus_per_task=3), *TEST_CLUSTER).line == \
        "asks for 3 GPUs per task; the largest node of partition debug has 2 GPUs: " \
        "lower --gpus-per-task"


def test_a_request_that_fits_is_ok():
    fit = check(ask(cpus_per_task=2, mem="16000M", gpus_per_task=2), *TEST_CLUSTER)
    assert fit == Fit(OK, "2 CPUs, 16000M and 2 GPUs per task fit 1 of 1 node(s) of partition "
                          "debug")
    fit.require()                                             # neither raises nor warns
    assert check(ask(mem=None, gpus_per_task=0), *TEST_CLUSTER).outcome == OK


def test_partition_limits_and_states():
    fit = check(ask(partition="short", cpus_per_task=2, time="2:00:00"), *TEST_CLUSTER)
    assert fit == Fit(REFUSED, "asks for 2 CPUs, 1G and 02:00:00 per task; the largest node of "
                               "partition short has 1 CPU and 1000M (partition limit "
                               "MaxCPUsPerNode=1, MaxMemPerNode=1000M); partition short allows at "
                               "most 01:00:00 (MaxTime): lower --cpus-per-task / --mem / --time or "
                               "give another --partition")
    assert check(ask(partition="short", mem="1000M"), *TEST_CLUSTER).outcome == OK
    fit = check(ask(partition="gpu"), *TEST_CLUSTER)
    assert fit == Fit(REFUSED, "partition gpu does not exist: give --partition (valid: debug "
                               "(default), short, off (DOWN))")        # no hidden or closed ones
    assert check(ask(partition="gone"), *TEST_CLUSTER).line.startswith(
        "partition gone is INACTIVE and takes no jobs: give another --partition (valid: debug")
    assert check(ask(partition="off"), *TEST_CLUSTER) == Fit(
        WARNING, "partition off is DOWN: tasks wait until it is up again (ask the "
                 "administrators, or give another --partition)")


def test_max_mem_per_cpu_caps_memory_at_every_cpu_of_the_node():
    partitions, nodes = TEST_CLUSTER
    percpu = [replace(p, state="UP") for p in partitions]
    assert check(ask(partition="percpu", mem="1000M"), percpu, nodes).outcome == OK
    assert check(ask(partition="percpu", mem="1001M"), percpu, nodes).line == \
        "asks for 1001M per task; the largest node of partition percpu has 1000M (partition " \
        "limit MaxMemPerCPU=500M): lower --mem"


def test_heterogeneous_nodes_name_the_closest_node_or_the_largest_of_each():
    fit = check(ask(partition="all", cpus_per_task=32, mem="64G"), *MIXED)
    assert fit == Fit(REFUSED, "asks for 32 CPUs, 64G and 1 GPU per task; no node of partition all "
                               "has all of them (the closest, gpu01, has 24 CPUs): lower "
                               "--cpus-per-task or give another --partition")
    fit = check(ask(partition="all", cpus_per_task=100, gpus_per_task=8), *MIXED)
    assert fit.line.startswith("asks for 100 CPUs and 8 GPUs per task; the nodes of partition "
                               "all have at most 64 CPUs and 4 GPUs: lower --cpus-per-task / "
                               "--gpus-per-task")
    assert check(ask(cpus_per_task=64, gpus_per_task=0), *MIXED) == Fit(
        OK, "64 CPUs and 1G per task fit 2 of 2 node(s) of partition cpu")
    assert check(ask(gpus_per_task=1), *MIXED).line == \
        "asks for 1 GPU per task; the largest node of partition cpu has 0 GPUs: " \
        "lower --gpus-per-task"                     # the default partition has no GPUs
    assert check(ask(partition="gpu", time="3-00:00:00"), *MIXED).line == \
        "asks for 3-00:00:00 per task; partition gpu allows at most 2-00:00:00 (MaxTime): " \
        "lower --time or give another --partition"
    no_default = [replace(p, default=False) for p in MIXED[0]]
    assert check(ask(), no_default, MIXED[1]).line == \
        "the cluster has no default partition: give --partition (valid: cpu, gpu, all)"


# -- faked scontrol ---------------------------------------------------------------------------

def test_check_profile_asks_scontrol_and_warns_when_it_cannot(fake_slurm, caplog,
                                                              monkeypatch, tmp_path):
    assert check_profile(ask()).outcome == OK
    assert check_profile(ask(cpus_per_task=4)).outcome == REFUSED
    fake_slurm.scontrol(partition=DENIED)
    fit = check_profile(ask(cpus_per_task=4))
    assert fit.outcome == WARNING
    assert fit.line == "could not check the request against the cluster's nodes (scontrol " \
                       "--all show partition -o: slurm_load_partitions error: " \
                       "Access/permission denied)"
    fit.require()                                   # a warning, not a refusal
    assert "Access/permission denied" in caplog.text
    fake_slurm.scontrol(partition="echo 'PartitionName=x MaxTime=soon'")
    assert "unexpected scontrol output" in check_profile(ask()).line
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))
    assert check_profile(ask()).line.startswith(
        "could not check the request against the cluster's nodes (scontrol --all show "
        "partition -o: [Errno 2] No such file or directory")


def submit(tmp_path, *extra):
    from tests.helpers import REPO, run_cli

    return run_cli("submit", REPO / "examples" / "reads.fa", "--run-dir", tmp_path / "run",
                   "--models", "tiny", "--shards", "2", "--partition", "debug", "--time", "10",
                   *extra)


def test_submit_refuses_before_writing_or_queueing_and_dry_run_shows_the_check(
        fake_slurm, tiny_cache, tmp_path):
    done = submit(tmp_path, "--cpus-per-task", "4", "--mem", "1G")
    line = "asks for 4 CPUs per task; the largest node of partition debug has 2 CPUs: " \
           "lower --cpus-per-task"
    assert done.returncode == 2 and done.stderr == f"virnuc-hpc submit: error: {line}\n"
    assert not (tmp_path / "run").exists() and not fake_slurm.submitted()

    dry = submit(tmp_path, "--cpus-per-task", "4", "--mem", "1G", "--dry-run")
    assert dry.returncode == 2 and dry.stderr.splitlines()[-1].endswith(line)
    assert "#SBATCH --cpus-per-task=4" in dry.stdout           # everything is still printed
    assert f"# request check: refused: {line}\n" in dry.stdout
    dry = submit(tmp_path, "--cpus-per-task", "1", "--mem", "1G", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "# request check: ok: 1 CPU, 1G and 1 GPU per task fit 1 of 1 node(s) of " \
           "partition debug\n" in dry.stdout
    assert not (tmp_path / "run").exists() and not fake_slurm.submitted()


def test_submit_goes_on_with_a_warning_when_the_cluster_cannot_be_asked(
        fake_slurm, tiny_cache, tmp_path):
    fake_slurm.scontrol(partition=DENIED)
    dry = submit(tmp_path, "--cpus-per-task", "4", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "# request check: warning: could not check the request" in dry.stdout
    done = submit(tmp_path, "--cpus-per-task", "4")
    assert done.returncode == 0, done.stderr
    assert "could not check the request against the cluster's nodes" in done.stderr
    assert "Access/permission denied" in done.stderr
    assert len(fake_slurm.submitted()) == 2                     # the array and the reduce job
