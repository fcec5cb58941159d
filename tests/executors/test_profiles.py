"""Submit profiles: jobs/*.yaml validated once, errors list the valid keys, CLI overrides win."""

from __future__ import annotations


import pytest

from virnuc_hpc.core.errors import ConfigError
from virnuc_hpc.executors import LocalExecutor, executor_for_run, make_executor, task_argv_for
from virnuc_hpc.executors.base import Submission, append_record
from virnuc_hpc.executors.profiles import load_profile, parse_time_minutes, profile_from_dict


@pytest.mark.parametrize("name, executor", [("slurm", "slurm"), ("apptainer", "slurm"),
                                            ("local", "local")])
def test_shipped_profiles_load(name, executor):
    prof = load_profile(name)
    assert prof.executor == executor and prof.name == name
    assert (prof.image is not None) == (name == "apptainer")


def test_cli_overrides_win_and_are_validated():
    prof = load_profile("slurm", partition="gpu", time="2:00:00", array_parallelism="8",
                        mem=None)
    assert (prof.partition, prof.time, prof.array_parallelism) == ("gpu", 120, 8)
    assert prof.mem == load_profile("slurm").mem                 # None = not given
    with pytest.raises(ConfigError, match="partition do not apply .* valid: parallel, gpus"):
        load_profile("local", partition="gpu")
    with pytest.raises(ConfigError, match="at least 1"):
        load_profile("slurm", array_parallelism=0)


def test_unknown_keys_are_refused_with_the_valid_ones(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("executor: slurm\npartition: gpu\ngpu_per_task: 2\n")
    with pytest.raises(ConfigError) as info:
        load_profile(str(path))
    message = str(info.value)
    assert "gpu_per_task" in message and "valid keys:" in message and "gpus_per_task" in message
    with pytest.raises(ConfigError, match="executor 'pbs' is not one of local, slurm"):
        profile_from_dict({"executor": "pbs"})
    with pytest.raises(ConfigError, match="valid profiles: .*apptainer.*local.*slurm"):
        load_profile("nonesuch")


@pytest.mark.parametrize("bad", [{"mem": "lots"}, {"time": "1:2:3:4"}, {"cpus_per_task": "x"},
                                 {"gpus_per_task": True}, {"cache": "/models"}])
def test_bad_values_are_refused(bad):
    with pytest.raises(ConfigError):
        profile_from_dict({"executor": "slurm", **bad})


@pytest.mark.parametrize("text, minutes", [(90, 90), ("30", 30), ("1:30", 2), ("02:00:00", 120),
                                           ("1-00", 1440), ("1-2:30", 1590),
                                           ("0-00:00:59", 1)])
def test_slurm_time_formats(text, minutes):
    assert parse_time_minutes(text) == minutes


def test_container_wrapper_binds_cache_and_run_and_can_be_replaced(tmp_path, monkeypatch):
    prof = load_profile("apptainer", image="/img/virnuc.sif", cache=str(tmp_path / "models"))
    run = tmp_path / "run"
    argv = task_argv_for(prof, run)(3)
    assert argv == ["apptainer", "exec", "--nv", "-B", f"{tmp_path / 'models'}:/models:ro",
                    "-B", str(run), "--env", "VIRNUC_HPC_CACHE=/models", "/img/virnuc.sif",
                    "virnuc-hpc", "run-task", str(run), "--index", "3"]
    run.mkdir()
    (run / "plan.json").write_text('{"samples": [{"path": "/data/reads/in.fa"}]}')
    assert task_argv_for(prof, run)(3) == argv  # tasks read the run's copy, not the input
    monkeypatch.setenv("VIRNUC_CONTAINER_CMD", "singularity --quiet")
    assert task_argv_for(prof, run)(0)[:3] == ["singularity", "--quiet", "exec"]
    plain = task_argv_for(load_profile("slurm"), run)(0)
    assert plain[1:] == ["-m", "virnuc_hpc", "run-task", str(run), "--index", "0"]


def test_recorded_profile_rebuilds_the_same_executor(tmp_path):
    prof = load_profile("apptainer", partition="gpu", time="1-00:00:00", cache=str(tmp_path))
    sub = Submission("slurm", str(tmp_path), {0: "7_0"}, {0: "log"})
    append_record(tmp_path, sub, prof.to_json())
    again, executor = executor_for_run(tmp_path)
    assert again == prof and executor.name == "slurm"
    local = make_executor(load_profile("local", gpus="0,1"))
    assert isinstance(local, LocalExecutor) and local.gpus == ["0", "1"] and local.parallel == 2
