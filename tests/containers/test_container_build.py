"""Build the image with podman on a local Debian base, run it offline, compare with the host.

Slow (about 5 minutes here: the build installs torch and the pinned packages, and vfs storage
copies the whole image for each container, so one container serves every check, through
`podman exec` as the image's own user, env and workdir). Skipped, with the reason, when podman
is missing, unless CI=true or VIRNUC_INSTALL_PODMAN=1 let it apt-get install podman.
Build time and image size are printed (pytest -s) and written to container-metrics.json.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.containers import recipes
from tests.containers.podman_local import Podman, ensure_podman
from tests.containers.recipes import CACHE_ENV, CLI, ROOT

EXAMPLE = ROOT / "examples" / "reads.fa"
RESULT_FILES = ("results/prediction_results.txt", "results/predictions.tsv")
METRICS: dict[str, object] = {}


def _timed(key: str, start: float) -> None:
    METRICS[key] = round(time.monotonic() - start, 1)


def _report(work: Path) -> None:
    path = work / "container-metrics.json"
    path.write_text(json.dumps(METRICS, indent=2))
    print(f"\ncontainer metrics ({path}): {json.dumps(METRICS)}")


def _host(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "VIRNUC_HPC_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "virnuc_hpc", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def _shareable_dir(path: Path, mode: int) -> Path:
    path.mkdir()
    path.chmod(mode)
    return path


@dataclass(frozen=True)
class Container:
    """A running container of the test image, with the model cache, input and output bound."""

    podman: Podman
    name: str
    tag: str
    work: Path
    cache: Path
    out: Path

    def exec(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.podman.run("exec", self.name, *args, check=check)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    ensure_podman()
    path = tmp_path_factory.mktemp("container")
    yield path
    _report(path)


@pytest.fixture(scope="module")
def built(work):
    podman = Podman.create(work)
    tag = f"localhost/virnuc-test:{uuid.uuid4().hex[:12]}"
    try:
        METRICS["base_seconds"] = round(podman.make_base(), 1)
        METRICS["build_seconds"] = round(podman.build(tag, work / "build.log"), 1)
        METRICS["image_bytes"] = podman.image_size(tag)
        METRICS["image_mb"] = round(METRICS["image_bytes"] / 1e6)
        yield podman, tag
    finally:
        podman.remove(tag)


@pytest.fixture(scope="module")
def container(work, built):
    """The tiny model cache is made on the host first and bound read-only at /models."""
    podman, tag = built
    cache = _shareable_dir(work / "models", 0o755)
    fetched = _host("models", "fetch", "--profile", "tiny", cache=cache)
    assert fetched.returncode == 0, fetched.stderr
    out = _shareable_dir(work / "ctr", 0o777)  # the image's user is not the host's
    name = f"virnuc-test-{uuid.uuid4().hex[:12]}"
    mounts = [f"{cache}:/models:ro", f"{EXAMPLE.parent}:/in:ro", f"{out}:/out"]
    volumes = [arg for mount in mounts for arg in ("-v", mount)]
    start = time.monotonic()
    podman.run("run", "-d", "--name", name, "--network=none", *volumes,
               "--entrypoint", "sleep", tag, "infinity")  # fmt: skip
    _timed("container_start_seconds", start)
    try:
        yield Container(podman, name, tag, work, cache, out)
    finally:
        podman.run("rm", "--force", "--time", "0", name, check=False)


def test_help_works_and_the_user_is_not_root(container):
    helped = container.exec(CLI, "--help")
    assert helped.stdout.startswith(f"usage: {CLI}")
    versions = yaml.safe_load(container.exec(CLI, "--version").stdout)["virnuc_hpc"]
    assert versions[CLI] == recipes.project()["version"]
    assert versions["torch"].split("+")[0] == recipes.pins(recipes.project())["torch"]
    assert int(container.exec("id", "-u").stdout) != 0


def test_installed_versions_are_the_project_pins(container):
    pins = recipes.pins(recipes.project())
    script = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))"
    )
    found = json.loads(container.exec("python", "-c", script, *pins).stdout)
    assert {name: version.split("+")[0] for name, version in found.items()} == pins


def test_image_entrypoint_labels_and_environment(container):
    fmt = "{{json .Config.Entrypoint}}|{{json .Config.Labels}}|{{json .Config.Env}}"
    inspected = container.podman.run("image", "inspect", "--format", fmt, container.tag)
    entry, labels, env = (json.loads(part) for part in inspected.stdout.split("|"))
    assert entry == [CLI]
    assert labels["org.opencontainers.image.version"] == recipes.project()["version"]
    env = dict(item.split("=", 1) for item in env)
    assert {k: env.get(k) for k in CACHE_ENV} == CACHE_ENV


def _unreadable_by_others(root: Path) -> list[str]:
    def shut(path: Path) -> bool:
        mode = path.stat().st_mode
        return not mode & stat.S_IROTH or (path.is_dir() and not mode & stat.S_IXOTH)

    return [str(path) for path in root.rglob("*") if shut(path)]


def test_predict_in_the_container_equals_the_host(container):
    host_out = container.work / "host"
    tiny = ("--models", "tiny")
    host = _host("predict", str(EXAMPLE), "-o", str(host_out), *tiny, cache=container.cache)
    assert host.returncode == 0, host.stderr
    # The container's user does not own the cache: like a cache shared on a cluster.
    assert _unreadable_by_others(container.cache) == [], "model cache not readable by others"
    start = time.monotonic()
    container.exec(CLI, "predict", f"/in/{EXAMPLE.name}", "-o", "/out/run", *tiny)
    _timed("container_predict_seconds", start)
    for name in RESULT_FILES:
        in_container = (container.out / "run" / name).read_text()
        assert in_container.count("\n") > 1, name
        assert in_container == (host_out / name).read_text(), name


PODMAN_AS_APPTAINER = """#!/bin/bash
# Stand-in for `apptainer exec --nv -B SRC[:DST[:ro]]... --env K=V IMAGE virnuc-hpc ARGS...`:
# the apptainer profile's own job script, each task run by podman on the built image.
[ "$1" = exec ] || exit 90
shift
args=()
while [ "${1:0:1}" = - ]; do
  case "$1" in
    --nv) shift ;;
    -B) case "$2" in *:*) args+=(-v "$2") ;; *) args+=(-v "$2:$2") ;; esac; shift 2 ;;
    --env) args+=(-e "$2"); shift 2 ;;
    *) echo "stand-in: unexpected option $1" >&2; exit 91 ;;
  esac
done
image="$1"; shift
[ "$1" = virnuc-hpc ] || exit 92
shift
echo "$image $*" >> %(log)s
export CONTAINERS_CONF=%(conf)s
exec %(podman)s run --rm --network=none --user 0 "${args[@]}" --entrypoint virnuc-hpc \
  "$image" "$@"
"""


def test_apptainer_profile_runs_on_slurm_with_podman_standing_in(container, slurm_cluster,
                                                                  monkeypatch):
    """`submit --profile apptainer` on the real test cluster: every array task and the reduce
    job run the generated `apptainer exec ...` line, here executed by podman on the image."""
    from virnuc_hpc.executors.base import read_record, submissions
    from virnuc_hpc.executors.slurm.executor import SlurmExecutor
    from virnuc_hpc.executors.profiles import load_profile

    podman, work = container.podman, container.work
    stand_in = work / "apptainer"
    calls = work / "apptainer-calls.log"
    stand_in.write_text(PODMAN_AS_APPTAINER % {"conf": podman.conf, "log": calls,
                                               "podman": " ".join(podman.command())})
    stand_in.chmod(0o755)
    monkeypatch.setenv("VIRNUC_CONTAINER_CMD", str(stand_in))
    run_dir, host_out = work / "slurm-apptainer", work / "host-ref"
    host = _host("predict", str(EXAMPLE), "-o", str(host_out), "--models", "tiny",
                 cache=container.cache)
    assert host.returncode == 0, host.stderr
    start = time.monotonic()
    submitted = _host("submit", str(EXAMPLE), "--run-dir", str(run_dir), "--models", "tiny",
                      "--shards", "2", "--precision", "fp32", "--profile", "apptainer",
                      "--image", container.tag,
                      "--cache", str(container.cache), "--partition", "debug", "--time", "20",
                      "--cpus-per-task", "1", "--mem", "1G", cache=container.cache)
    assert submitted.returncode == 0, submitted.stderr
    sub = submissions(read_record(run_dir))[-1]
    outcome = SlurmExecutor(load_profile("apptainer"), poll_s=1).wait(sub, timeout=900)
    _timed("slurm_apptainer_run_seconds", start)
    assert outcome.failed == [] and outcome.reduce.state == "completed", outcome
    lines = calls.read_text().splitlines()
    assert sorted(line.split()[1:2] + line.split()[-1:] for line in lines) == \
        [["reduce", str(run_dir)], ["run-task", "0"], ["run-task", "1"]]
    assert all(line.split()[0] == container.tag for line in lines)
    for name in RESULT_FILES:
        assert (run_dir / name).read_text() == (host_out / name).read_text(), name
