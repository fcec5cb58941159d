"""MKL's other code path, on this machine.

MKL picks its kernels by CPU: on a genuine Intel CPU it takes code paths (AVX-512 kernels,
other blockings, other small-matrix cut-offs) that it does not take on an AMD CPU, and whose
rounding depends on the shape in other places. The issue that brought fixed-shape batches was
found on such a machine while the suite passed here. MKL asks `mkl_serv_intel_cpu_true()`
which vendor it runs on; PyTorch's build exports that symbol, so a library preloaded with
LD_PRELOAD that answers 1 makes MKL take its Intel paths on any x86-64 CPU. The invariance
tests run once more that way (test_mkl_paths.py), so that CI covers both paths whatever CPU it
is given. On an Intel CPU the shim changes nothing: its native path is that one already."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

SHIM = ("int mkl_serv_intel_cpu_true(void) { return 1; }\n"
        "int mkl_serv_intel_cpu(void) { return 1; }\n")
ENV = "VIRNUC_TEST_MKL_PATH"   # set to "intel" in the process that runs on the shim

# The bits of one row of F.linear at several row counts (M), DNABERT-S's widths: MKL's kernel
# choice shows up as rows that differ between M values. Prints a digest of the rows and how
# many row counts give other bits than the largest.
PROBE = """
import hashlib, torch
torch.manual_seed(0)
w, row = torch.randn(2304, 768), torch.randn(768)
outs = []
for m in (2, 4, 8, 16, 64, 257, 1000):
    x = torch.randn(m, 768); x[m // 2] = row
    outs.append(torch.nn.functional.linear(x, w)[m // 2])
digest = hashlib.sha256(b"".join(o.numpy().tobytes() for o in outs)).hexdigest()[:16]
print(digest, sum(not torch.equal(o, outs[-1]) for o in outs))
"""


def unavailable() -> str | None:
    """Why the shim cannot be built here (None: it can)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"MKL runs on x86-64 only (this is {platform.machine()})"
    if shutil.which("gcc") is None:
        return "gcc is needed to build the LD_PRELOAD shim"
    return None


def build_shim(folder: Path) -> Path:
    source, library = folder / "mkl_intel_path.c", folder / "libmkl_intel_path.so"
    source.write_text(SHIM)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", str(library), str(source)],
                   check=True, capture_output=True)
    return library


def intel_path_env(library: Path) -> dict[str, str]:
    """This process's environment with MKL on its Intel code path."""
    preload = " ".join(p for p in (str(library), os.environ.get("LD_PRELOAD", "")) if p)
    return dict(os.environ, LD_PRELOAD=preload, **{ENV: "intel"})


def probe(env: dict[str, str] | None = None) -> tuple[str, int]:
    """(digest of the probe rows, how many row counts give other bits than the largest)."""
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, check=True)
    digest, differing = done.stdout.split()
    return digest, int(differing)


def on_intel_path() -> bool:
    """Whether this process runs on the shim (the rerun of test_mkl_paths.py)."""
    return os.environ.get(ENV) == "intel"
