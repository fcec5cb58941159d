"""Podman as it works on these machines: rootful, vfs storage, runc, no registry.

Why each flag: docs/containers.md. The base image is made locally by scripts/container-base.sh;
torch is the CPU build, from pip's local find-links folder when it holds one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.containers.recipes import ROOT

BASE_TAG = "localhost/virnuc-base:bookworm-min"
PACKAGES = ["podman", "buildah", "debootstrap", "runc"]
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
# Host CA material for a TLS-intercepting proxy, visible to the build's apt/pip only.
CA_DIR = Path("/usr/local/share/ca-certificates")


def ensure_podman() -> None:
    """Return when podman can build here; install it when CI=true or VIRNUC_INSTALL_PODMAN=1."""
    if os.geteuid() != 0:
        pytest.skip("container build test needs root (rootful podman, debootstrap)")
    if all(shutil.which(tool) for tool in ("podman", "debootstrap", "runc")):
        return
    if os.environ.get("CI") != "true" and os.environ.get("VIRNUC_INSTALL_PODMAN") != "1":
        pytest.skip(
            f"{' / '.join(PACKAGES)} not installed: set VIRNUC_INSTALL_PODMAN=1 (or CI=true) "
            f"to let the test apt-get install them"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES], check=True, env=env, timeout=600)


def torch_wheel_dir() -> Path | None:
    """pip's find-links folder when it holds a torch wheel (bind-mounted into the build)."""
    for entry in os.environ.get("PIP_FIND_LINKS", "/opt/wheels").split():
        folder = Path(entry.removeprefix("file://"))
        if folder.is_dir() and any(folder.glob("torch-*.whl")):
            return folder
    return None


@dataclass(frozen=True)
class Podman:
    """Runs podman with this machine's flags; `conf` is a containers.conf it writes."""

    conf: Path

    @classmethod
    def create(cls, workdir: Path) -> Podman:
        conf = workdir / "containers.conf"
        conf.write_text("[containers]\ndefault_ulimits = []\n")
        return cls(conf)

    def command(self, *args: str) -> list[str]:
        flags = ["--runtime", "runc", "--storage-driver=vfs", "--cgroup-manager=cgroupfs"]
        return ["podman", *flags, *args]

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CONTAINERS_CONF": str(self.conf),
            "PODMAN": "podman --storage-driver=vfs",
        }

    def run(
        self, *args: str, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            self.command(*args), capture_output=True, text=True, env=self.env(), timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(self.command(*args))} -> {result.returncode}\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def make_base(self) -> float:
        """scripts/container-base.sh (cached by its key label); returns seconds spent."""
        start = time.monotonic()
        subprocess.run(
            [str(ROOT / "scripts" / "container-base.sh"), BASE_TAG],
            check=True,
            env=self.env(),
            timeout=600,
        )
        return time.monotonic() - start

    def build(self, tag: str, log: Path) -> float:
        """Build Containerfile on the local base with CPU torch; returns seconds spent."""
        start = time.monotonic()
        result = self.run(*build_args(tag), timeout=900, check=False)
        log.write_text(result.stdout + result.stderr)
        assert result.returncode == 0, f"podman build failed, log {log}:\n{result.stderr[-4000:]}"
        return time.monotonic() - start

    def image_size(self, tag: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", tag).stdout)

    def remove(self, tag: str) -> None:
        self.run("rmi", "--force", tag, check=False, timeout=300)


def build_args(tag: str) -> list[str]:
    wheels = torch_wheel_dir()
    torch = (
        [
            "-v",
            f"{wheels}:/wheels:ro",
            "--build-arg",
            "TORCH_FIND_LINKS=/wheels",
            "--build-arg",
            "TORCH_INDEX_URL=https://pypi.org/simple",
        ]
        if wheels
        else ["--build-arg", f"TORCH_INDEX_URL={CPU_TORCH_INDEX}"]
    )
    ca = ["-v", f"{CA_DIR}:{CA_DIR}:ro"] if CA_DIR.is_dir() and any(CA_DIR.iterdir()) else []
    return [
        "build",
        "--isolation=chroot",
        "--network=host",
        "--layers=false",
        "--pull=never",
        *torch,
        *ca,
        "--build-arg",
        f"BASE_IMAGE={BASE_TAG}",
        "-t",
        tag,
        "-f",
        str(ROOT / "Containerfile"),
        str(ROOT),
    ]
