#!/usr/bin/env bash
# The wheels a lent GPU machine lacks for bench/gpu_suite.py (docs/gpu-suite.md), downloaded
# into .whl/ (ignored by git) for Python 3.12 on manylinux x86-64, without dependencies:
# the list names each one. Run from the repository root, where pip reaches an index.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
for wheel in fair-esm==2.0.0 dnaio==1.2.4 xopen==2.1.0 isal==1.9.1 zlib-ng==1.1.0 \
             backports-zstd==1.8.0; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "$wheel"
done
ls -1 .whl
