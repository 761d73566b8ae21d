"""python -m tileattn: the main job.

Runs tileattn and plain NumPy attention on a few built-in problems (or on one given with --shape), checks
both against the float64 oracle (on sampled query rows for large problems) and prints a table: shape,
time, GFLOP/s, speed-up over NumPy and maximum error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import _api, reference
from ._api import attention, bfloat16_dtype
from ._cli import output_path, positive, thread_count
from ._config import config


@dataclass
class Problem:
    name: str
    batch: int
    heads_q: int
    heads_kv: int
    seq_q: int
    seq_k: int
    head_dim: int
    head_dim_v: int
    causal: bool
    dtype: str = "float32"

    def shape(self) -> str:
        kv = f"/{self.heads_kv}" if self.heads_kv != self.heads_q else ""
        sk = f"x{self.seq_k}" if self.seq_k != self.seq_q else ""
        return f"B{self.batch} H{self.heads_q}{kv} S{self.seq_q}{sk} D{self.head_dim}"

    def visible_pairs(self) -> int:
        if not self.causal:
            return self.seq_q * self.seq_k
        offset = self.seq_k - self.seq_q
        i = np.arange(self.seq_q, dtype=np.int64)
        return int(np.clip(i + offset + 1, 0, self.seq_k).sum())

    def bytes_needed(self, numpy: bool) -> int:
        """About the memory the run takes: q, k, v and out (drawn in float32, then cast), and plain
        NumPy's two (B, Hq, Sq, Sk) float32 score arrays when it runs."""
        b, hq, hkv, sq, sk = self.batch, self.heads_q, self.heads_kv, self.seq_q, self.seq_k
        elems = b * (
            hq * sq * (self.head_dim + self.head_dim_v)
            + hkv * sk * (self.head_dim + self.head_dim_v)
        )
        return 12 * elems + (8 * b * hq * sq * sk if numpy else 0)

    def flops(self) -> float:
        """2 * B * Hq * visible pairs * (D + Dv): one multiply-add per q.k and per p.v term."""
        return (
            2.0
            * self.batch
            * self.heads_q
            * self.visible_pairs()
            * (self.head_dim + self.head_dim_v)
        )


DEFAULT_PROBLEMS = [
    Problem("prefill", 1, 8, 8, 4096, 4096, 64, 64, causal=False),
    Problem("prefill causal", 1, 8, 8, 4096, 4096, 64, 64, causal=True),
    Problem("short batch", 32, 12, 12, 128, 128, 32, 32, causal=False),
    Problem("decode (GQA)", 1, 32, 8, 1, 32768, 128, 128, causal=True),
]


@dataclass
class Result:
    problem: Problem
    tileattn_s: float
    numpy_s: float | None
    tileattn_err: float
    numpy_err: float | None
    threads: int
    checked_rows: int
    notes: list[str] = field(default_factory=list)

    @property
    def gflops(self) -> float:
        return self.problem.flops() / self.tileattn_s / 1e9

    @property
    def speedup(self) -> float | None:
        return None if self.numpy_s is None else self.numpy_s / self.tileattn_s


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, one line per step otherwise)."""

    def __init__(self, total: int, enabled: bool = True, width: int = 30) -> None:
        self.total, self.done, self.width = total, 0, width
        self.enabled = enabled
        self.tty = sys.stderr.isatty()

    def step(self, label: str) -> None:
        if not self.enabled:
            return
        filled = int(self.width * self.done / max(self.total, 1))
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"[{bar}] {self.done}/{self.total} {label}"
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def advance(self) -> None:
        self.done += 1

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()


def make_inputs(p: Problem, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if p.dtype == "bfloat16":
        dtype = bfloat16_dtype()
        if dtype is None:
            raise SystemExit("bfloat16 needs ml_dtypes: pip install ml_dtypes")
    else:
        dtype = np.dtype(p.dtype)

    def make(h: int, s: int, d: int) -> np.ndarray:
        return rng.standard_normal((p.batch, h, s, d), dtype=np.float32).astype(dtype)

    return (
        make(p.heads_q, p.seq_q, p.head_dim),
        make(p.heads_kv, p.seq_k, p.head_dim),
        make(p.heads_kv, p.seq_k, p.head_dim_v),
    )


def time_call(fn, repeat: int) -> float:
    """Median wall time of `repeat` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def sampled_rows(seq_q: int, limit: int = 96) -> np.ndarray:
    """All rows of small problems; for large ones the first, last and evenly spread rows."""
    if seq_q <= limit:
        return np.arange(seq_q)
    return np.unique(np.linspace(0, seq_q - 1, limit).astype(np.int64))


def max_error(result: np.ndarray, oracle_rows: np.ndarray, rows: np.ndarray) -> float:
    got = result[:, :, rows].astype(np.float64)
    return float(np.max(np.abs(got - oracle_rows), initial=0.0))


def run_problem(
    p: Problem, repeat: int, threads: int | None, with_numpy: bool, progress: Progress
) -> Result:
    q, k, v = make_inputs(p)
    progress.step(f"{p.name}: tileattn")
    out = attention(q, k, v, causal=p.causal, num_threads=threads)
    t_tile = time_call(
        lambda: attention(q, k, v, causal=p.causal, num_threads=threads, out=out), repeat
    )
    progress.advance()
    rows = sampled_rows(p.seq_q)
    progress.step(f"{p.name}: oracle on {len(rows)} rows")
    ref_rows, _ = reference.attention_rows(q, k, v, rows, causal=p.causal)
    err = max_error(out, ref_rows, rows)
    numpy_s = numpy_err = None
    if with_numpy:
        progress.step(f"{p.name}: NumPy")
        naive = reference.naive_attention(q, k, v, causal=p.causal)
        numpy_s = time_call(
            lambda: reference.naive_attention(q, k, v, causal=p.causal), max(1, repeat // 3)
        )
        numpy_err = max_error(naive, ref_rows, rows)
    progress.advance()
    used = threads if threads is not None else _api.get_num_threads()
    return Result(p, t_tile, numpy_s, err, numpy_err, used, len(rows))


def format_table(results: list[Result]) -> str:
    header = [
        "case",
        "shape",
        "dtype",
        "causal",
        "tileattn ms",
        "GFLOP/s",
        "NumPy ms",
        "speed-up",
        "max err",
        "NumPy max err",
    ]
    rows = []
    for r in results:
        p = r.problem
        rows.append(
            [
                p.name,
                p.shape(),
                p.dtype,
                "yes" if p.causal else "no",
                f"{r.tileattn_s * 1e3:.2f}",
                f"{r.gflops:.1f}",
                "-" if r.numpy_s is None else f"{r.numpy_s * 1e3:.1f}",
                "-" if r.speedup is None else f"{r.speedup:.1f}x",
                f"{r.tileattn_err:.2e}",
                "-" if r.numpy_err is None else f"{r.numpy_err:.2e}",
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX: no limit known
        return 2**62


_MAX_PROBLEM_BYTES = _physical_memory()


def parse_shape(text: str) -> tuple[int, int, int, int]:
    try:
        b, h, s, d = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("--shape takes B,H,S,D, e.g. 1,8,2048,64") from None
    if min(b, h, s, d) < 1:
        raise argparse.ArgumentTypeError("--shape values must be >= 1")
    return b, h, s, d


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m tileattn",
        description="Run tileattn and plain NumPy attention on built-in problems (or one given with "
        "--shape), check both against the float64 oracle and print time, GFLOP/s, speed-up and error. "
        "`python -m tileattn bench --compare` runs the benchmark comparison against torch SDPA, NumPy "
        "and this machine's FMA and bandwidth probes.",
    )
    ap.add_argument(
        "--shape",
        type=parse_shape,
        metavar="B,H,S,D",
        help="run one problem: batch, query heads, sequence length, head dim",
    )
    ap.add_argument(
        "--kv-heads", type=positive, metavar="N", help="K/V heads for --shape (GQA); default H"
    )
    ap.add_argument("--seq-k", type=positive, metavar="N", help="key length for --shape; default S")
    ap.add_argument(
        "--dv", type=positive, metavar="N", help="value head dim for --shape; default D"
    )
    ap.add_argument(
        "--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"]
    )
    ap.add_argument("--causal", action="store_true", help="causal mask for --shape (bottom-right)")
    ap.add_argument(
        "--threads", type=thread_count, metavar="N", help="threads; default: all CPUs usable"
    )
    ap.add_argument("--repeat", type=positive, default=5, help="timed calls per problem (median)")
    ap.add_argument("--no-numpy", action="store_true", help="skip the plain NumPy comparison")
    ap.add_argument(
        "--json", type=output_path, metavar="PATH", help="also write the results as JSON"
    )
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--show-config", action="store_true", help="print show_config() and exit")
    where = ap.add_argument_group(
        "locations",
        "print where the C/C++ headers, libtileattn and its CMake package are, and exit",
    )
    where.add_argument(
        "--includes", action="store_true", help="compiler flag for the headers (-I...)"
    )
    where.add_argument(
        "--libs",
        action="store_true",
        help="linker flags for libtileattn (-L... -Wl,-rpath,... -l...)",
    )
    where.add_argument("--libdir", action="store_true", help="folder of libtileattn")
    where.add_argument("--cmakedir", action="store_true", help="folder of tileattnConfig.cmake")
    where.add_argument("--pkgconfigdir", action="store_true", help="folder of tileattn.pc")
    return ap


def print_locations(args: argparse.Namespace) -> bool:
    """Prints the locations asked for, one per line; False when none was asked for."""
    from . import _locations as loc

    lines = []
    if args.includes:
        lines.append(f"-I{loc.get_include()}")
    if args.libs:
        libdir = loc.get_library_dir()
        lines.append(f"-L{libdir} -Wl,-rpath,{libdir} -ltileattn")
    if args.libdir:
        lines.append(loc.get_library_dir())
    if args.cmakedir:
        lines.append(loc.get_cmake_dir())
    if args.pkgconfigdir:
        lines.append(loc.get_pkgconfig_dir())
    for line in lines:
        print(line)
    return bool(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "bench":  # python -m tileattn bench --compare
        from .bench import main as bench_main

        return bench_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if print_locations(args):
        return 0
    if args.show_config:
        from ._config import show_config

        show_config()
        return 0
    if args.shape is not None:
        b, h, s, d = args.shape
        hkv = args.kv_heads or h
        if h % hkv:
            raise SystemExit("--kv-heads must divide H")
        problems = [
            Problem(
                "custom", b, h, hkv, s, args.seq_k or s, d, args.dv or d, args.causal, args.dtype
            )
        ]
        need = problems[0].bytes_needed(not args.no_numpy)
        if need > _MAX_PROBLEM_BYTES:
            parser.error(
                f"--shape: the problem needs about {need / 2**30:.3g} GiB for its arrays; at most "
                f"{_MAX_PROBLEM_BYTES / 2**30:.3g} GiB (this machine's memory) can be run"
            )
    else:
        problems = [Problem(**{**asdict(p), "dtype": args.dtype}) for p in DEFAULT_PROBLEMS]
    progress = Progress(2 * len(problems), enabled=not args.no_progress)
    results = []
    try:
        for p in problems:
            results.append(run_problem(p, args.repeat, args.threads, not args.no_numpy, progress))
    finally:
        progress.close()
    cfg = config()
    print(
        f"tileattn {cfg['version']} ({cfg['kernel']['path']}), {results[0].threads} threads, "
        f"{cfg['cpu']['brand'] or cfg['cpu']['machine']}"
    )
    print(format_table(results))
    print(
        "GFLOP/s counts 2*B*H*visible_pairs*(D+Dv); errors are max |out - oracle| on "
        f"up to {max(r.checked_rows for r in results)} sampled query rows per problem."
    )
    if args.json:
        payload: dict[str, Any] = {
            "config": cfg,
            "results": [
                {
                    **asdict(r.problem),
                    "flops": r.problem.flops(),
                    "tileattn_s": r.tileattn_s,
                    "numpy_s": r.numpy_s,
                    "gflops": r.gflops,
                    "speedup": r.speedup,
                    "max_err": r.tileattn_err,
                    "numpy_max_err": r.numpy_err,
                    "threads": r.threads,
                }
                for r in results
            ],
        }
        with open(args.json, "w") as f:
            json.dump(
                payload,
                f,
                indent=2,
                default=lambda x: None if isinstance(x, float) and math.isnan(x) else str(x),
            )
    bad = [r for r in results if not math.isfinite(r.tileattn_err)]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
