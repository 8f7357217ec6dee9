#!/usr/bin/env python3
"""Import cycles between a crate's top-level modules.

For each crate (a directory holding src/lib.rs or src/main.rs; by default the
workspace members), builds the graph "top-level module A names top-level
module B" from `crate::B…` and `super::…` paths (use declarations and paths in
code alike, resolved against the inline `mod x { … }` blocks they sit in),
then prints every strongly connected component of more than one module.
Exits 1 when there is one, so `.ci/run` fails on a new cycle.

Usage: .ci/module_cycles.py [-v] [CRATE_DIR…]   (-v also prints the edges)
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CRATES = ["common", "observe", "controller", "agent", "mock", "bins", "simagent"]

TOKEN = re.compile(
    r"""
      (?P<lcomment>//[^\n]*)
    | (?P<bcomment>/\*)
    | (?P<rawstr>b?r(?P<hashes>\#*)")
    | (?P<str>b?"(?:\\.|[^"\\])*")
    | (?P<char>b?'(?:\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|\\.|[^'\\])'(?!'))
    | (?P<lifetime>'[A-Za-z_][A-Za-z0-9_]*)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<path>::)
    | (?P<punct>[{}();,*])
    | (?P<other>\S)
    """,
    re.VERBOSE | re.DOTALL,
)


def tokens(text):
    """The identifiers, `::` and brackets of a Rust file; comments and literals dropped."""
    pos = 0
    out = []
    while True:
        m = TOKEN.search(text, pos)
        if not m:
            return out
        kind = m.lastgroup
        if kind == "hashes":
            kind = "rawstr"
        pos = m.end()
        if kind == "bcomment":
            depth = 1
            while depth and pos < len(text):
                if text.startswith("/*", pos):
                    depth, pos = depth + 1, pos + 2
                elif text.startswith("*/", pos):
                    depth, pos = depth - 1, pos + 2
                else:
                    pos += 1
        elif kind == "rawstr":
            end = text.find('"' + m.group("hashes"), pos)
            pos = len(text) if end < 0 else end + 1 + len(m.group("hashes"))
        elif kind in ("ident", "path", "punct"):
            out.append(m.group())


def file_module(src, path):
    """The module path of a source file, e.g. src/run/session.rs -> ["run", "session"]."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return parts


def group_heads(toks, i):
    """The first segments of each path in a `{a::x, b, c::{…}}` use group starting at toks[i] == '{'."""
    heads, depth, expect = [], 0, True
    while i < len(toks):
        t = toks[i]
        if t == "{":
            depth += 1
            expect = depth == 1
        elif t == "}":
            depth -= 1
            if depth == 0:
                return heads, i
        elif t == "," and depth == 1:
            expect = True
        elif expect and depth == 1:
            heads.append(t)
            expect = False
        i += 1
    return heads, i


def references(src, path, tops):
    """(from_top, to_top) for every reference a file makes to a top-level module."""
    toks = tokens(path.read_text())
    base = file_module(src, path)
    stack = []  # (inline module name or None, brace depth at which it opened)
    depth = 0
    pending_mod = None
    refs = set()

    def current():
        return base + [name for name, _ in stack if name]

    i = 0
    while i < len(toks):
        t = toks[i]
        if t == "mod" and i + 2 < len(toks) and toks[i + 2] == "{":
            pending_mod = toks[i + 1]
        if t == "{":
            depth += 1
            stack.append((pending_mod, depth))
            pending_mod = None
        elif t == "}":
            depth -= 1
            if stack:
                stack.pop()
        elif t in ("crate", "super", "self") and i + 1 < len(toks) and toks[i + 1] == "::":
            if i > 0 and toks[i - 1] == "::":  # `$crate::`-like or a.b::super: not a path start
                i += 1
                continue
            here = current()
            j = i
            if t == "crate":
                target, j = [], i + 2
            elif t == "self":
                target, j = list(here), i + 2
            else:
                target = list(here)
                while j + 1 < len(toks) and toks[j] == "super" and toks[j + 1] == "::":
                    target = target[:-1]
                    j += 2
            if target:
                heads = [target[0]]
            elif j < len(toks) and toks[j] == "{":
                heads, _ = group_heads(toks, j)
            elif j < len(toks):
                heads = [toks[j]]
            else:
                heads = []
            if here:
                for h in heads:
                    if h in tops and h != here[0]:
                        refs.add((here[0], h))
            i = j
            continue
        i += 1
    return refs


def crate_graph(crate_dir):
    src = crate_dir / "src"
    root = src / "lib.rs" if (src / "lib.rs").exists() else src / "main.rs"
    files = [p for p in src.rglob("*.rs") if p != root and "bin" not in p.relative_to(src).parts[:1]]
    tops = {file_module(src, p)[0] for p in files}
    edges = {}
    for f in sorted(files):
        for a, b in references(src, f, tops):
            edges.setdefault(a, set()).add(b)
    return tops, edges


def strongly_connected(nodes, edges):
    """Tarjan's algorithm; returns the components, each sorted."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main(argv):
    verbose = "-v" in argv
    crates = [a for a in argv if a != "-v"] or DEFAULT_CRATES
    failed = False
    for name in crates:
        crate_dir = (ROOT / name) if not Path(name).is_absolute() else Path(name)
        tops, edges = crate_graph(crate_dir)
        cycles = [c for c in strongly_connected(tops, edges) if len(c) > 1]
        status = "no cycle" if not cycles else f"{len(cycles)} cycle(s)"
        print(f"{name}: {len(tops)} top-level modules, {status}")
        for comp in cycles:
            failed = True
            inside = set(comp)
            print(f"  cycle of {len(comp)}: {' '.join(comp)}")
            for a in comp:
                targets = sorted(b for b in edges.get(a, ()) if b in inside)
                print(f"    {a} -> {' '.join(targets)}")
        if verbose:
            for a in sorted(edges):
                print(f"  {a} -> {' '.join(sorted(edges[a]))}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
