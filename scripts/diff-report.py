#!/usr/bin/env python3
"""Summarise differential-test traces: the first differing step of every seed, grouped.

Usage:
    CORRAL_DIFF_SEEDS=300 CORRAL_DIFF_TRACE_DIR=/tmp/dt cargo test --test differential random
    scripts/diff-report.py /tmp/dt

Reads seed<N>-zookeeper.trace and seed<N>-<target>-under-test.trace pairs written by
tests/differential.rs and prints one line per kind of difference, most frequent first,
with an example seed and step to rerun (CORRAL_DIFF_SEED=<N>).
"""
import collections
import glob
import re
import sys


def steps(path):
    out, cur = [], None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f.read().split("\n"):
            if re.match(r"^\d{4} ", line):
                if cur is not None:
                    out.append(cur)
                cur = [line]
            elif cur is not None and line:
                cur.append(line)
    if cur:
        out.append(cur)
    return out


def outcome(line):
    return line.split("->", 1)[-1].strip()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    kinds = collections.Counter()
    example = {}
    pairs = 0
    for ref in sorted(glob.glob(f"{sys.argv[1]}/seed*-zookeeper.trace")):
        seed = re.search(r"seed(\d+)-", ref).group(1)
        others = glob.glob(ref.replace("-zookeeper.trace", "-*-under-test.trace"))
        if not others:
            continue
        pairs += 1
        for a, b in zip(steps(ref), steps(others[0])):
            if a == b:
                continue
            op = re.sub(r"^\d{4} s\d+ ", "", a[0]).split(" ")[0]
            if a[0] != b[0]:
                ra, rb = outcome(a[0]), outcome(b[0])
                ca, cb = ra.split(" ")[0], rb.split(" ")[0]
                if ca != cb:
                    kind = f"{op}: reference {ca}, under test {cb}"
                else:
                    # The first differing word, e.g. `data=null` vs `data=""`.
                    ta, tb = ra.split(" "), rb.split(" ")
                    j = next((j for j, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb)))
                    wa = " ".join(ta[j:j + 2]) if j < len(ta) else "<end>"
                    wb = " ".join(tb[j:j + 2]) if j < len(tb) else "<end>"
                    kind = f"{op} {ca}: {wa[:60]} vs {wb[:60]}"
                kind = re.sub(r"Z\d+", "Z", re.sub(r"sess#\d+", "sess#N", re.sub(r"/s\d+", "/sN", kind)))
            else:
                kind = f"watch events after {op}"
            kinds[kind] += 1
            example.setdefault(kind, (seed, a[0][:4]))
            break
    print(f"{pairs} seed(s) compared, {sum(kinds.values())} differ")
    for kind, n in kinds.most_common():
        seed, step = example[kind]
        print(f"{n:4}  {kind}   (e.g. seed {seed} step {step})")


if __name__ == "__main__":
    main()
