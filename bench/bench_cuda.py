"""GPU benchmark: forward TFLOP/s of tileattn and torch SDPA (flash backend) in one run, on one GPU.

    python bench/bench_cuda.py [--dtype bfloat16] [--json PATH]

Cases: D = 128, S = 4096, 8192, 16384, 16 heads and batch 16384 / S * 2 (B*H*S fixed, enough blocks to
fill an H100), causal and not; tileattn on the same torch CUDA tensors, in place, on torch's stream.
FLOPs count 4 * B * H * visible_pairs * D (two matrix products). Each case also prints the relative
error (Frobenius norm) of tileattn's output against torch's on the same inputs (the output is poisoned
with NaN first). Each number is the median of CUDA-event
timed calls after warm-up, both libraries interleaved per case. Needs a CUDA build of tileattn
(pip install . -Ccmake.define.TILEATTN_CUDA=ON) and PyTorch with CUDA.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import tileattn


def visible_pairs(s: int, causal: bool) -> int:
    return s * (s + 1) // 2 if causal else s * s


def time_ms(torch, fn, repeat: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--seqs", default="4096,8192,16384")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)

    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if not torch.cuda.is_available() or not tileattn.cuda.is_available():
        print(
            f"no GPU: torch {torch.cuda.is_available()}, tileattn {tileattn.cuda.info()['error']}"
        )
        return 1
    dtype = getattr(torch, args.dtype)
    name = torch.cuda.get_device_name()
    backend = (
        SDPBackend.FLASH_ATTENTION if args.dtype != "float32" else SDPBackend.EFFICIENT_ATTENTION
    )
    print(
        f"tileattn {tileattn.__version__}, torch {torch.__version__}, {name}, {args.dtype}, D={args.dim}"
    )
    header = (
        f"{'case':<34}{'tileattn ms':>12}{'TFLOP/s':>9}{'torch ms':>10}{'TFLOP/s':>9}{'ratio':>8}"
        f"{'rel err':>10}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for s in (int(x) for x in args.seqs.split(",")):
        b = max(1, 2 * 16384 // s)
        h, d = args.heads, args.dim
        q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=dtype) for _ in range(3))
        out = torch.empty_like(q)
        for causal in (False, True):
            flops = 4 * b * h * visible_pairs(s, causal) * d

            def ours(causal=causal, q=q, k=k, v=v, out=out):
                tileattn.attention(q, k, v, causal=causal, out=out)

            def theirs(causal=causal, q=q, k=k, v=v):
                with sdpa_kernel(backend):
                    torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)

            ours_ms, torch_ms = (
                time_ms(torch, ours, args.repeat),
                time_ms(torch, theirs, args.repeat),
            )
            # The same function: relative error against torch's result on these inputs.
            out.fill_(float("nan"))
            ours()
            with sdpa_kernel(backend):
                ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
            err = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
            row = {
                "batch": b,
                "heads": h,
                "seq": s,
                "dim": d,
                "causal": causal,
                "dtype": args.dtype,
                "tileattn_ms": ours_ms,
                "torch_ms": torch_ms,
                "tileattn_tflops": flops / ours_ms / 1e9,
                "torch_tflops": flops / torch_ms / 1e9,
                "ratio": torch_ms / ours_ms,
                "rel_err_vs_torch": err,
            }
            rows.append(row)
            case = f"B{b} H{h} S{s} D{d}{' causal' if causal else ''}"
            print(
                f"{case:<34}{ours_ms:>12.3f}{row['tileattn_tflops']:>9.1f}{torch_ms:>10.3f}"
                f"{row['torch_tflops']:>9.1f}{row['ratio']:>7.2f}x{err:>10.1e}"
            )
    print("ratio = torch time / tileattn time (>= 0.9 is the FlashAttention-2 target)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "torch": torch.__version__, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
