"""The layout in figures, from the code's own imports (those inside functions included):
modules per package, import cycles between modules, and imports that point up a layer of
pyproject.toml's layers contract. Prints the markdown table docs/architecture.md holds;
`--check` exits 1 when the doc's table differs (tests/cli/test_architecture.py runs it).

    python scripts/architecture.py [--check]
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections import Counter
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
BEGIN, END = "<!-- figures: begin -->", "<!-- figures: end -->"


def layers() -> list[list[str]]:
    """The layers contract's layers, top first, each a list of packages."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["type"] == "layers")
    return [[p.strip() for p in layer.replace(":", "|").split("|")] for layer in contract["layers"]]


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected sets of more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & modules) for m in modules}

    def visit(root: str) -> None:
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        out.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on.add(child)
                work.append((child, iter(edges[child])))
            elif child in on:
                low[node] = min(low[node], index[child])

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return out


def graph_of_code() -> grimp.ImportGraph:
    return grimp.build_graph("virnuc_hpc", cache_dir=None)


def figures(graph: grimp.ImportGraph | None = None) -> str:
    graph = graph or graph_of_code()
    modules = {m for m in graph.modules if m.startswith("virnuc_hpc")}
    rank = {package: n for n, layer in enumerate(layers()) for package in layer}
    per_package = Counter(package_of(m) for m in modules if package_of(m) in rank)
    up = [(a, b) for a in modules for b in graph.find_modules_directly_imported_by(a)
          if package_of(a) in rank and package_of(b) in rank
          and rank[package_of(b)] < rank[package_of(a)]]
    top = sorted(m for m in modules if m.count(".") == 1 and package_of(m) not in rank)
    rows = ["| layer (top first) | package | modules |", "|---|---|---|"]
    for n, layer in enumerate(layers()):
        for package in layer:
            rows.append(f"| {n + 1} | `{package.split('.', 1)[1]}/` | {per_package[package]} |")
    found = cycles(graph, modules)
    rows += ["", f"- modules in all: {len(modules)}; at the top level besides the packages: "
                 f"{len(top)} ({', '.join(m.split('.', 1)[1] for m in top)})",
             f"- import cycles between modules: {len(found)}",
             f"- imports that point up a layer: {len(up)}"]
    return "\n".join(rows) + "\n"


def documented() -> str:
    text = DOC.read_text()
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip("\n") + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    now = figures()
    if args.check:
        if now != documented():
            print("docs/architecture.md's figures differ from the code's:\n" + now)
            return 1
        return 0
    print(now, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
