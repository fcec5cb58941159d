"""A real single-node SLURM cluster for tests: slurmctld + slurmd in a temp dir, on free ports.

auth/none, no accounting (a `sacct` stand-in reads `scontrol`), two fake GPUs (symlinks to
/dev/null declared as gres/gpu), KillWait=2. Daemons are stopped by PID. Used by the pytest
fixture in conftest.py and by `make slurm-up` / `make slurm-down`:

    python tests/executors/slurm_cluster.py up DIR      # prints `export ...` lines
    python tests/executors/slurm_cluster.py down DIR
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "srun", "sinfo")
APT_PACKAGES = ("slurmctld", "slurmd", "slurm-client")
GPUS = 2

SACCT_STANDIN = r"""#!/bin/bash
# sacct stand-in for a cluster without accounting: answers `sacct -o JobID,State,NodeList
# --parsable2 -j ID...` (what submitit asks) from scontrol, which remembers jobs for MinJobAge.
echo "JobID|State|NodeList"
while [ $# -gt 0 ]; do
  [ "$1" = -j ] && for id in ${2//,/ }; do scontrol -o show job "$id" 2>/dev/null | awk '{
    split("", f)
    for (i = 1; i <= NF; i++) {
      p = index($i, "="); if (p) f[substr($i, 1, p - 1)] = substr($i, p + 1) }
    id = f["JobId"]; t = f["ArrayTaskId"]
    if (f["ArrayJobId"] != "" && t != "") id = f["ArrayJobId"] "_" (t ~ /[-,]/ ? "[" t "]" : t)
    print id "|" f["JobState"] "|" f["NodeList"] }'; done
  shift
done
"""


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if shutil.which(name) is None]


def install_allowed() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("VIRNUC_INSTALL_SLURM") == "1"


def install_slurm() -> None:
    """apt-get the Debian packages (root only); the caller decides whether that is allowed."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES],
                   check=True, env=env)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class SlurmCluster:
    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def env(self, base: dict | None = None) -> dict:
        base = dict(os.environ if base is None else base)
        return dict(base, SLURM_CONF=str(self.conf), PATH=f"{self.bin}:{base.get('PATH', '')}")

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(argv, env=self.env(), capture_output=True, text=True, check=check)

    def write_config(self) -> None:
        for sub in ("state", "spool", "log", "fakegpu", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for g in range(GPUS):
            link = self.root / "fakegpu" / f"nvidia{g}"
            if not link.is_symlink():
                link.symlink_to("/dev/null")
        (self.root / "gres.conf").write_text(
            f"AutoDetect=off\nName=gpu File={self.root}/fakegpu/nvidia[0-{GPUS - 1}]\n")
        sacct = self.bin / "sacct"
        sacct.write_text(SACCT_STANDIN)
        sacct.chmod(0o755)
        self.conf.write_text("\n".join(self._config_lines()) + "\n")

    def _config_lines(self) -> list[str]:
        ctld_port, d_port = free_ports(2)
        host, r = socket.gethostname(), self.root
        mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 * 9 // 10
        return [
            "ClusterName=virnuctest", f"SlurmctldHost={host}", f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={d_port}", "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/none",
            "CredType=cred/none", "MpiDefault=none", "ProctrackType=proctrack/linuxproc",
            "AuthInfo=cred_expire=5",   # a requeued job may start again after 5 s, not 120 s
            "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core", "ReturnToService=2", "KillWait=2", "MinJobAge=3600",
            "SchedulerParameters=sched_interval=1", f"StateSaveLocation={r}/state",
            f"SlurmdSpoolDir={r}/spool", f"SlurmctldPidFile={r}/slurmctld.pid",
            f"SlurmdPidFile={r}/slurmd.pid", f"SlurmctldLogFile={r}/log/slurmctld.log",
            f"SlurmdLogFile={r}/log/slurmd.log", "GresTypes=gpu",
            f"NodeName={host} CPUs={os.cpu_count()} RealMemory={mem_mb} Gres=gpu:{GPUS} "
            "State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]

    def start(self, timeout_s: float = 30) -> None:
        self.write_config()
        self.run("slurmctld", "-c")
        self.run("slurmd")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.run("sinfo", "-h", "-N", "-o", "%t", check=False).stdout.split()
            if state and state[0] in ("idle", "mix", "alloc"):
                return
            time.sleep(0.25)
        logs = "\n".join(p.read_text()[-2000:] for p in (self.root / "log").glob("*.log"))
        self.stop()
        raise RuntimeError(f"slurm node not ready after {timeout_s} s:\n{logs}")

    def _pid(self, daemon: str) -> int | None:
        path = self.root / f"{daemon}.pid"
        try:
            pid = int(path.read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def cancel_all(self, timeout_s: float = 20) -> None:
        self.run("scancel", "-p", "debug", check=False)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.run("squeue", "-h", "-t", "PD,R,CG,S", check=False).stdout.strip():
                return
            time.sleep(0.25)

    def stop(self) -> None:
        """Cancel jobs (running steps outlive slurmd), then stop slurmd and slurmctld by PID."""
        if self._pid("slurmctld"):
            self.cancel_all()
        for daemon in ("slurmd", "slurmctld"):
            pid = self._pid(daemon)
            if pid is not None:
                _terminate(pid)


def _terminate(pid: int, grace_s: float = 15) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print(__doc__, file=sys.stderr)
        return 2
    cluster = SlurmCluster(Path(argv[1]).resolve())
    if argv[0] == "down":
        cluster.stop()
        return 0
    if missing_binaries():
        print(f"missing {', '.join(missing_binaries())}: apt-get install -y "
              f"{' '.join(APT_PACKAGES)}", file=sys.stderr)
        return 1
    cluster.start()
    print(f"export SLURM_CONF={cluster.conf} PATH={cluster.bin}:$PATH")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
