"""tileattn against torch SDPA over a grid of shapes beyond the targets' table.

The issue asks for tileattn to be faster than torch's CPU kernel "for every shape they run"; the
`--compare` table covers eleven. This script times both, side by side (alternating bursts, as
`python -m tileattn bench --compare`, steady state by default), over prefill lengths from 16 to 2048,
head dims 32-256, batches of short sequences, GQA and MQA, chunked prefill (Sq < Sk, causal), a few
query rows against a long cache (speculative decoding), the `bshd` layout, sizes that are not powers of
two, float64 and bfloat16, and prints each ratio. Shapes where tileattn is slower are listed at the end.

    python bench/sweep_vs_torch.py [--threads N] [--rounds R] [--min-time S] [--bursts] [--only TEXT]
                                   [--json FILE]

Torch gets contiguous `bhsd` tensors (for the `bshd` rows: the same transposed views tileattn gets) and,
where Sq != Sk with a causal mask, the bottom-right mask as an explicit boolean mask (torch's
`is_causal` is top-left aligned).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from tileattn import attention, bench
from tileattn._config import config


def grid() -> list[tuple[str, bench.Case, str]]:
    C = bench.Case
    rows: list[tuple[str, bench.Case, str]] = []

    def add(group: str, case: bench.Case, layout: str = "bhsd") -> None:
        rows.append((group, case, layout))

    for s in (16, 64, 256, 1024, 2048):
        for causal in (False, True):
            add("prefill H8 D64", C("", 1, 8, 8, s, s, 64, causal))
    for d in (32, 80, 96, 128, 256):
        for causal in (False, True):
            add("prefill H8 S1024", C("", 1, 8, 8, 1024, 1024, d, causal))
    for b, s in ((64, 32), (64, 64), (16, 128), (8, 256), (4, 512)):
        add("batches (H12 D64)", C("", b, 12, 12, s, s, 64, False))
    for b, s in ((32, 128), (128, 64)):
        add("batches (H12 D32)", C("", b, 12, 12, s, s, 32, False))
    add("GQA prefill", C("", 1, 32, 8, 1024, 1024, 128, True))
    add("GQA prefill", C("", 1, 32, 4, 512, 512, 64, False))
    add("MQA prefill", C("", 1, 16, 1, 1024, 1024, 64, True))
    for sq, sk in ((128, 4096), (512, 2048), (16, 8192)):
        add("chunked prefill (causal)", C("", 1, 32, 8, sq, sk, 128, True))
    for sq in (1, 4, 16):
        add("decode Hq32 Hkv8 D128", C("", 1, 32, 8, sq, 8192, 128, True))
    add("decode MHA", C("", 1, 32, 32, 1, 4096, 64, True))
    add("decode MQA", C("", 1, 16, 1, 1, 16384, 128, True))
    add("decode batch", C("", 16, 32, 8, 1, 2048, 128, True))
    add("layout bshd", C("", 1, 8, 8, 2048, 2048, 64, False), "bshd")
    add("layout bshd", C("", 4, 12, 12, 256, 256, 64, True), "bshd")
    # Sizes that are not powers of two (ragged last tiles, register blocks and vectors; fortieth session).
    for b, hq, hkv, sq, sk, d, causal in (
        (1, 8, 8, 2047, 2047, 64, False),
        (1, 8, 8, 2047, 2047, 64, True),
        (1, 8, 8, 1000, 1000, 72, False),
        (1, 8, 8, 777, 777, 48, False),
        (1, 8, 8, 1024, 1024, 100, False),
        (1, 8, 8, 1024, 1024, 120, True),
        (1, 14, 2, 1024, 1024, 64, False),
        (1, 8, 8, 333, 4001, 64, False),
        (3, 7, 7, 300, 300, 64, False),
        (1, 8, 8, 2048, 2048, 8, False),
    ):
        add("awkward sizes", C("", b, hq, hkv, sq, sk, d, causal))
    add("float64", C("", 1, 8, 8, 1024, 1024, 64, False, "float64"))
    add("float64", C("", 8, 12, 12, 128, 128, 64, True, "float64"))
    add("bfloat16", C("", 1, 8, 8, 1024, 1024, 64, True, "bfloat16"))
    add("bfloat16", C("", 1, 32, 8, 1, 8192, 128, True, "bfloat16"))
    return rows


def runners(case: bench.Case, layout: str, threads: int):
    q, k, v = bench.make_inputs(case)
    if layout == "bshd":  # the caller's arrays are (B, S, H, D); both libraries read them in place
        q, k, v = (np.ascontiguousarray(x.transpose(0, 2, 1, 3)) for x in (q, k, v))
        views = tuple(x.transpose(0, 2, 1, 3) for x in (q, k, v))  # bhsd views of the bshd arrays
    else:
        views = (q, k, v)
    out = np.empty((*q.shape[:-1], case.head_dim_v), q.dtype)

    def ours():
        return attention(q, k, v, causal=case.causal, layout=layout, out=out, num_threads=threads)

    torch_fn = bench.torch_runner(case, *views, threads)
    if torch_fn is not None and layout == "bshd":
        # torch_runner copies to contiguous arrays; give torch the strided views instead
        import torch

        tq, tk, tv = (torch.from_numpy(x).transpose(1, 2) for x in (q, k, v))
        sdpa = torch.nn.functional.scaled_dot_product_attention

        def torch_fn():
            with torch.no_grad():
                return sdpa(tq, tk, tv, is_causal=case.causal)

    return ours, torch_fn


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--bursts", action="store_true", help="time after a pause instead of steady")
    ap.add_argument("--only", default=None, help="only groups whose name contains this text")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch is not installed: nothing to compare against", file=sys.stderr)
        return 1
    threads = args.threads or config()["threads"]["num_threads"]
    warm = 0.0 if args.bursts else bench.STEADY_WARM_SECONDS
    rows = [r for r in grid() if args.only is None or args.only in r[0]]
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')}, {config()['cpu']['brand']}, kernel "
        f"{config()['kernel']['path']}, {threads} threads, {'bursts' if args.bursts else 'steady'}"
    )
    print(
        f"{'group':<26} {'shape':<44} {'tileattn ms':>11} {'torch ms':>9} {'GFLOP/s':>8} {'ratio':>6}"
    )
    out = []
    for group, case, layout in rows:
        ours, theirs = runners(case, layout, threads)
        t = bench.time_interleaved(
            {"tileattn": ours, "torch": theirs}, args.rounds, args.min_time, warm_seconds=warm
        )
        ratio = t["torch"] / t["tileattn"]
        label = case.label() + ("" if layout == "bhsd" else " bshd")
        gf = case.flops() / t["tileattn"] / 1e9
        print(
            f"{group:<26} {label:<44} {t['tileattn'] * 1e3:11.3f} {t['torch'] * 1e3:9.3f} "
            f"{gf:8.1f} {ratio:5.2f}x",
            flush=True,
        )
        out.append({"group": group, "case": label, "seconds": t, "ratio": ratio})
    slower = [r for r in out if r["ratio"] < 1.0]
    ratios = [r["ratio"] for r in out]
    print(
        f"# {len(out)} shapes: ratio median {statistics.median(ratios):.2f}x, "
        f"min {min(ratios):.2f}x; slower than torch: {len(slower)}"
    )
    for r in slower:
        print(f"#   {r['case']}: {r['ratio']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": threads, "rows": out}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
