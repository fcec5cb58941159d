"""Fake SLURM commands for tests without a cluster: a scontrol answering from captured text
(data/scontrol-show-*.txt), a recording sbatch, failing squeue and sacct."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).with_name("data")


def captured(name: str) -> str:
    """The shell command that prints data/scontrol-show-NAME.txt."""
    return f"cat {DATA}/scontrol-show-{name}.txt"


FAKE_SCONTROL = """#!/bin/bash
echo "$*" >> {bin}/scontrol.calls
case "$*" in
  *"show partition"*) {partition} ;;
  *"show node"*) {node} ;;
  *"show config"*) echo 'MaxArraySize            = {max_array_size}' ;;
esac
"""
DENIED = "echo 'slurm_load_partitions error: Access/permission denied' >&2; exit 1"


FAKE_SBATCH = """#!/bin/bash
n=$(( $(cat {d}/counter 2>/dev/null || echo 100) + 1 )); echo $n > {d}/counter
printf '%s\\n' "$@" > {d}/args.$n; cp "${{@: -1}}" {d}/script.$n
echo "Submitted batch job $n"
"""


class FakeSlurm:
    """A folder of fake SLURM commands, first on PATH: sbatch keeps each job's arguments and
    script (args.N, script.N) and prints job ids 101, 102...; scontrol answers `show config`
    (MaxArraySize) and `show partition/node` with captured text (or any shell command) and logs
    its calls; squeue and sacct fail (tests replace them)."""

    def __init__(self, bin_dir: Path, max_array_size: int = 1001):
        self.bin = bin_dir
        bin_dir.mkdir(parents=True, exist_ok=True)
        self.command("sbatch", FAKE_SBATCH.format(d=bin_dir))
        for name in ("squeue", "sacct", "srun"):
            self.command(name, "#!/bin/bash\nexit 1\n")
        self.scontrol(max_array_size=max_array_size)

    def command(self, name: str, script: str) -> None:
        (self.bin / name).write_text(script)
        (self.bin / name).chmod(0o755)

    def scontrol(self, partition: str = captured("partition"), node: str = captured("node"),
                 max_array_size: int = 1001) -> None:
        self.command("scontrol", FAKE_SCONTROL.format(bin=self.bin, partition=partition,
                                                      node=node, max_array_size=max_array_size))

    def calls(self, name: str) -> list[str]:
        """scontrol's calls, one line of arguments each."""
        path = self.bin / f"{name}.calls"
        return path.read_text().splitlines() if path.exists() else []

    def submitted(self) -> list[Path]:
        """The sbatch scripts submitted so far."""
        return sorted(self.bin.glob("script.*"))
