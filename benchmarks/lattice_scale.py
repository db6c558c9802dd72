"""How the lattice criterion scales: binary and continuous variants at n = 512 .. 4096.

    .venv/bin/python benchmarks/lattice_scale.py
    .venv/bin/python benchmarks/lattice_scale.py --sizes 4096 --repeats 1 --compare-blas --out lattice.md

Input: the influence matrix of a magnitude-pruned LSTM layer, A = sum over the 4 gate
blocks of |W_hh|, each block with ``--density`` nonzeros (0.1 = 90% pruned) drawn as
|N(0, 1)| from ``--seed``. Timed: ``LatticeCriterion(...).scores(A)`` end to end
(relation and meet-irreducibility; continuous = ``--thresholds`` quantile levels).
Reported: the median wall time of ``--repeats`` runs, and the peak of memory allocated
during one extra run as traced by tracemalloc (numpy buffers included, BLAS-internal
workspace not); the process's peak RSS (ru_maxrss) is given once for the whole script.
``--compare-blas`` also times the binary criterion with both products done as dense
float32 BLAS (DESIGN.md's direct method) instead of bitsets, to justify the default.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import sparse

from common import machine, md_table

import compressor.lattice as lattice
from compressor.lattice import LatticeCriterion, binary_relation, influence_matrix


def pruned_lstm_influence(n: int, density: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = np.abs(rng.standard_normal((4 * n, n), dtype=np.float32))
    w[rng.random((4 * n, n), dtype=np.float32) >= density] = 0.0
    return influence_matrix(w, gates=4)


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall seconds over ``repeats`` runs, and tracemalloc's peak MiB of one more."""
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(seconds), peak / 2**20


def libraries() -> str:
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return (f"numpy {np.__version__} (BLAS: {blas.get('name')} {blas.get('version')}), "
            f"sparse {sparse.__version__}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    ap.add_argument("--thresholds", type=int, default=16, help="levels of the continuous variant")
    ap.add_argument("--quantile", type=float, default=0.5, help="binary variant's quantile")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--density", type=float, default=0.1, help="nonzeros per gate block (0.1 = 90%% pruned)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare-blas", action="store_true", help="also time the dense float32 BLAS method")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown report here")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    if not 0 < args.density <= 1 or args.repeats < 1 or args.thresholds < 1 or min(args.sizes) < 1:
        ap.error("need 0 < --density <= 1, --repeats >= 1, --thresholds >= 1 and positive --sizes")

    binary = LatticeCriterion("binary", quantile=args.quantile)
    continuous = LatticeCriterion("continuous", thresholds=args.thresholds)
    load = os.getloadavg()
    t_start = time.monotonic()
    rows = []
    for n in args.sizes:
        A = pruned_lstm_influence(n, args.density, args.seed)
        relation = binary_relation(A, quantile=args.quantile)
        row = [n, f"{(A > 0).mean():.3f}", f"{relation.mean():.3f}", int(binary.scores(A).sum())]
        t_bin, m_bin = timed(lambda: binary.scores(A), args.repeats)
        row += [t_bin, m_bin]
        if args.compare_blas:
            t_blas, _ = timed(lambda: lattice._meet_irreducible(binary_relation(A, quantile=args.quantile),
                                                                None, "blas"), args.repeats)
            row.append(t_blas)
        t_cont, m_cont = timed(lambda: continuous.scores(A), args.repeats)
        row += [t_cont, m_cont]
        rows.append(row)
        if not args.quiet:
            print(f"n={n}: binary {t_bin:.3f} s, continuous {t_cont:.3f} s", file=sys.stderr, flush=True)

    header = ["n", "A nonzero", f"relation density (q={args.quantile})", "meet-irreducible",
              "binary s", "binary peak MiB"]
    if args.compare_blas:
        header.append("binary s, dense BLAS")
    header += [f"continuous ({args.thresholds} levels) s", "continuous peak MiB"]
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux
    command = "python benchmarks/lattice_scale.py " + " ".join(sys.argv[1:])
    body = (f"Median of {args.repeats} run(s); peak MiB = tracemalloc peak of one extra run (numpy "
            f"buffers; not BLAS workspace). Process peak RSS {peak_rss:.0f} MiB. Load average at start "
            f"{load[0]:.2f} (1 min) on {os.cpu_count()} cores. {libraries()}.\n\n"
            f"Input: LSTM influence (4 gate blocks, density {args.density} each, |N(0,1)|, seed {args.seed}).\n\n"
            + md_table(header, rows))
    text = (f"## Lattice criterion at scale\n\n`{command}`\n\nMachine: {machine()}. "
            f"Wall time: {(time.monotonic() - t_start) / 60:.1f} min.\n\n{body}\n")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)  # atomic: a half-written report never replaces a good one
    print(text)


if __name__ == "__main__":
    main()
