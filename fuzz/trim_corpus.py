#!/usr/bin/env python3
"""Picks a small subset of a fuzz corpus that keeps most of its edge coverage.

libFuzzer's merge (`cargo fuzz cmin`) keeps every input that adds a feature, which for
these targets is nearly every input. This script runs the built fuzz target once over the
corpus in merge mode and reads the coverage edges of each input from libFuzzer's merge
control file. It then adds inputs greedily by new edges per byte until the byte budget is
spent or every edge is covered, and copies the chosen inputs to the output folder.

Usage, from fuzz/ after `cargo +nightly fuzz build TARGET`:

    python3 trim_corpus.py TARGET BUDGET_BYTES OUT_DIR CORPUS_DIR [CORPUS_DIR ...]
"""

import os
import shutil
import subprocess
import sys
import tempfile

FUZZ_BIN = "target/x86_64-unknown-linux-gnu/release"
# Cost in bytes added to each input's size, so that a 2-byte input with one new edge does
# not outrank a 200-byte input with many.
FILE_OVERHEAD = 64


def edges_per_input(target, corpus_dirs):
    """Runs the merge of `target` over `corpus_dirs` and returns {path: set of edge ids}."""
    with tempfile.TemporaryDirectory() as scratch:
        control = os.path.join(scratch, "control")
        merged = os.path.join(scratch, "merged")
        os.mkdir(merged)
        command = [
            os.path.join(FUZZ_BIN, target), "-merge=1", f"-merge_control_file={control}",
            "-max_len=262144", "-rss_limit_mb=2048", "-timeout=10", merged, *corpus_dirs,
        ]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "RAYON_NUM_THREADS": "1"})
        lines = open(control).read().split("\n")

    # Control file: input count, count of inputs done, one path per line, then for each
    # input "STARTED i size", "FT i features..." and "COV i edges...".
    count = int(lines[0])
    paths = lines[2:2 + count]
    edges = {}
    for line in lines[2 + count:]:
        fields = line.split()
        if fields and fields[0] == "COV":
            edges[paths[int(fields[1])]] = set(map(int, fields[2:]))
    return edges


def choose(edges, budget):
    """Adds inputs by most new edges per byte while they fit in `budget` bytes."""
    size = {path: os.path.getsize(path) for path in edges}
    all_edges = set().union(*edges.values())
    covered, chosen, total = set(), [], 0
    candidates = set(edges)
    while candidates:
        best = max(candidates, key=lambda p: (len(edges[p] - covered) / (size[p] + FILE_OVERHEAD), p))
        candidates.remove(best)
        if not edges[best] - covered:
            break
        if total + size[best] > budget:
            continue
        covered |= edges[best]
        chosen.append(best)
        total += size[best]
    print(f"{len(chosen)} of {len(edges)} inputs, {total} of {sum(size.values())} bytes, "
          f"{len(covered)} of {len(all_edges)} edges ({100 * len(covered) / len(all_edges):.1f} %)")
    return chosen


def main():
    target, budget, out_dir, corpus_dirs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    chosen = choose(edges_per_input(target, corpus_dirs), budget)
    os.makedirs(out_dir, exist_ok=True)
    for path in chosen:
        shutil.copy(path, out_dir)


if __name__ == "__main__":
    main()
