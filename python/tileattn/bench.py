"""python -m tileattn bench --compare: tileattn against torch SDPA, plain NumPy and this machine's ceilings.

In one run, interleaved (ratios taken side by side in the same minute are what mean something on a
shared machine): the FMA-throughput probe (float32 and float64), the memory-read bandwidth probe, and for
each case of the CPU-speed targets tileattn, torch.nn.functional.scaled_dot_product_attention (when torch
is installed) and plain NumPy. Prints one table with every ratio and the target it must meet, writes JSON
and, when matplotlib is installed, a PNG chart of GFLOP/s per case.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import _api, _core, reference
from ._api import attention, bfloat16_dtype
from ._cli import non_negative_seconds, output_path, positive, thread_count
from ._config import config


@dataclass
class Case:
    name: str
    batch: int
    heads_q: int
    heads_kv: int
    seq_q: int
    seq_k: int
    head_dim: int
    causal: bool
    dtype: str = "float32"
    # Targets: (kind, value). Kinds: "peak" (fraction of the FMA peak of the dtype), "torch" (speed-up
    # over torch SDPA), "bandwidth" (fraction of the read-bandwidth probe), "numpy" (speed-up over NumPy),
    # "f32" (time no more than the float32 case of the same shape times the value).
    targets: list[tuple[str, float]] = field(default_factory=list)
    numpy: bool = False

    @property
    def head_dim_v(self) -> int:
        return self.head_dim

    def label(self) -> str:
        kv = f" Hkv{self.heads_kv}" if self.heads_kv != self.heads_q else ""
        sk = f" Sk{self.seq_k}" if self.seq_k != self.seq_q else ""
        c = " causal" if self.causal else ""
        dt = "" if self.dtype == "float32" else f" {self.dtype}"
        return f"B{self.batch} H{self.heads_q}{kv} S{self.seq_q}{sk} D{self.head_dim}{c}{dt}"

    def visible_pairs(self) -> int:
        if not self.causal:
            return self.seq_q * self.seq_k
        i = np.arange(self.seq_q, dtype=np.int64)
        return int(np.clip(i + self.seq_k - self.seq_q + 1, 0, self.seq_k).sum())

    def flops(self) -> float:
        return (
            2.0
            * self.batch
            * self.heads_q
            * self.visible_pairs()
            * (self.head_dim + self.head_dim_v)
        )

    def kv_bytes(self) -> float:
        itemsize = (
            8 if self.dtype == "float64" else 2 if self.dtype in ("float16", "bfloat16") else 4
        )
        return float(
            self.batch * self.heads_kv * self.seq_k * (self.head_dim + self.head_dim_v) * itemsize
        )


def cases() -> list[Case]:
    """The rows of the CPU-speed targets (issue: CPU speed)."""
    big = [("peak", 0.85), ("torch", 1.25)]
    return [
        Case(
            "prefill", 1, 8, 8, 2048, 2048, 64, False, targets=[*big, ("numpy", 20.0)], numpy=True
        ),
        Case("prefill", 1, 8, 8, 2048, 2048, 64, True, targets=list(big)),
        Case("prefill", 1, 8, 8, 4096, 4096, 128, False, targets=list(big)),
        Case("prefill", 1, 8, 8, 4096, 4096, 128, True, targets=list(big)),
        Case("short causal", 1, 8, 8, 512, 512, 64, True, targets=[("torch", 1.5)]),
        Case("embedding batch", 32, 12, 12, 128, 128, 32, False, targets=[("torch", 1.5)]),
        Case("batch", 8, 16, 16, 512, 512, 64, False, targets=[("torch", 1.5)]),
        Case(
            "decode", 1, 32, 8, 1, 32768, 128, True, targets=[("torch", 1.5), ("bandwidth", 0.70)]
        ),
        Case("float64", 1, 8, 8, 2048, 2048, 64, False, "float64", targets=[("peak", 0.85)]),
        Case("float16", 1, 8, 8, 2048, 2048, 64, False, "float16", targets=[("f32", 1.0)]),
        Case("bfloat16", 1, 8, 8, 2048, 2048, 64, False, "bfloat16", targets=[("f32", 1.0)]),
    ]


def make_inputs(case: Case, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    dtype = bfloat16_dtype() if case.dtype == "bfloat16" else np.dtype(case.dtype)
    if dtype is None:
        raise RuntimeError("bfloat16 needs ml_dtypes")

    def make(h: int, s: int) -> np.ndarray:
        return rng.standard_normal((case.batch, h, s, case.head_dim), dtype=np.float32).astype(
            dtype
        )

    return (
        make(case.heads_q, case.seq_q),
        make(case.heads_kv, case.seq_k),
        make(case.heads_kv, case.seq_k),
    )


def torch_runner(case: Case, q, k, v, threads: int) -> Callable[[], Any] | None:
    """torch SDPA on the same data (bottom-right causal expressed as an explicit mask when Sq != Sk)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    if case.dtype == "bfloat16":
        tq, tk, tv = (
            torch.from_numpy(x.view(np.uint16).astype(np.int32) << 16)
            .view(torch.float32)
            .to(torch.bfloat16)
            for x in (q, k, v)
        )
    else:
        tq, tk, tv = (torch.from_numpy(np.ascontiguousarray(x)) for x in (q, k, v))
    gqa = case.heads_q != case.heads_kv
    mask = None
    is_causal = case.causal
    if case.causal and case.seq_q != case.seq_k:
        mask = torch.from_numpy(reference.visible_keys(case.seq_q, case.seq_k, True))
        is_causal = False
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def run():
        with torch.no_grad():
            return sdpa(tq, tk, tv, attn_mask=mask, is_causal=is_causal, enable_gqa=gqa)

    return run


# After a call, torch's OpenMP threads and NumPy's OpenBLAS threads keep spinning for a while (up to
# ~0.2 s), which would steal the cores from the competitor timed next. Each competitor's calls are
# therefore timed in a short burst after a pause that lets everyone's threads go idle; bursts of the
# competitors alternate, round after round, so that they still share the same minute.
SETTLE_SECONDS = 0.25

# --steady: calls back to back for this long before each timed burst. Right after a pause every
# competitor runs slower for several calls (torch SDPA at B32 H12 S128 D32: 7.4, 7.1, 6.5 ms for the
# 2nd-4th calls, 5.7 ms from the 10th on; tileattn 5.0, 4.9, 4.8 ms, then 4.7 ms), so the two ways of
# timing give different ratios for short calls: the default answers "a request now and then", --steady
# "a loop of calls".
STEADY_WARM_SECONDS = 0.3


def time_interleaved(
    runners: dict[str, Callable[[], Any]],
    rounds: int,
    min_time: float,
    burst: int = 3,
    warm_seconds: float = 0.0,
) -> dict[str, float]:
    """Median seconds per call of each runner, from alternating bursts after a warm-up: one call (its
    threads wake up), or back-to-back calls for warm_seconds (steady state)."""
    for fn in runners.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    start = time.perf_counter()
    r = 0
    while r < rounds or (time.perf_counter() - start < min_time and r < 10 * rounds):
        for name, fn in runners.items():
            time.sleep(SETTLE_SECONDS)
            fn()  # the first call of a burst wakes the competitor's threads up
            warm_until = time.perf_counter() + warm_seconds
            while time.perf_counter() < warm_until:
                fn()
            for _ in range(burst):
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
        r += 1
    return {name: statistics.median(ts) for name, ts in samples.items()}


def textbook_numpy(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool) -> np.ndarray:
    """Plain NumPy attention as BENCHMARKING.md defines it, ``softmax(q @ k.T * scale) @ v``, written the
    textbook way (out-of-place temporaries), in the inputs' precision."""
    scale = np.asarray(1.0 / np.sqrt(q.shape[-1]), q.dtype)
    group = q.shape[1] // k.shape[1]
    if group > 1:  # GQA: each query head reads its kv head
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    s = q @ np.swapaxes(k, -1, -2) * scale
    if causal:
        s = np.where(reference.visible_keys(q.shape[-2], k.shape[-2], True), s, -np.inf)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True) @ v


def probes(threads: int) -> dict[str, float]:
    return {
        "fma_f32_gflops": _core.probe_fma_gflops(threads, False, 0.5),
        "fma_f64_gflops": _core.probe_fma_gflops(threads, True, 0.5),
        "read_gbs": _core.probe_read_gbs(threads, 1 << 30, 3),
        "threads_together": _core.probe_threads(threads, 2.0),
    }


F32_RUNNER = "tileattn float32"  # a low-precision case's float32 twin, timed in the same bursts
READ_RUNNER = "read probe"  # a bandwidth case's read probe over as many bytes, in the same bursts
FMA_RUNNER = "FMA probe"  # a peak case's FMA probe, about as long as a call, in the same bursts


def read_share(kv_bytes: float, seconds: float, peaks: dict[str, float]) -> float:
    """Share of the best read-probe reading of the run (before and after every case) that a call of
    `seconds` reading `kv_bytes` once reaches."""
    return kv_bytes / seconds / 1e9 / peaks["read_gbs"]


def peak_key(dtype: str) -> str:
    """The probe reading a case of this dtype is measured against."""
    return "fma_f64_gflops" if dtype == "float64" else "fma_f32_gflops"


def evaluate(
    case: Case,
    times: dict[str, float],
    peaks: dict[str, float],
    f32_times: dict[str, float],
    fma_gflops: float | None = None,
):
    """Each target of the case: (description, measured value, required value, met). fma_gflops: the FMA
    probe's rate timed in the case's bursts (FMA_RUNNER), if it was."""
    out = []
    t = times["tileattn"]
    gflops = case.flops() / t / 1e9
    for kind, value in case.targets:
        if kind == "peak":
            # Side by side: the FMA probe timed interleaved in this case's bursts, as the competitors are
            # (on a shared machine the cores' speed moves from minute to minute). Without it, the best of
            # the probes run before and after every case.
            peak = fma_gflops if fma_gflops is not None else peaks[peak_key(case.dtype)]
            measured = gflops / peak
            out.append(
                (
                    f"of {'f64' if case.dtype == 'float64' else 'f32'} FMA peak",
                    measured,
                    value,
                    measured >= value,
                )
            )
        elif kind == "torch" and "torch" in times:
            measured = times["torch"] / t
            out.append(("x torch SDPA", measured, value, measured >= value))
        elif kind == "numpy" and "numpy" in times:
            measured = times["numpy"] / t
            out.append(("x NumPy", measured, value, measured >= value))
        elif kind == "bandwidth":
            # Side by side: the read probe over as many bytes as K and V, timed interleaved in this case's
            # bursts, since a shared machine's memory bandwidth moves from minute to minute (25-53 GB/s
            # in one session on a Zen 4; bench/RESULTS.md). Without it, the best of the probes run before
            # and after every case.
            if READ_RUNNER in times:
                measured = times[READ_RUNNER] / t
            else:
                measured = read_share(case.kv_bytes(), t, peaks)
            out.append(("of read bandwidth", measured, value, measured >= value))
        elif kind == "f32":
            # Side by side: the same values as float32, timed interleaved in this case's bursts (else
            # the float32 case's time, measured minutes earlier).
            key = (case.batch, case.heads_q, case.seq_q, case.head_dim, case.causal)
            f32 = times.get(F32_RUNNER, f32_times.get(key))
            if f32 is not None:
                measured = f32 / t  # > 1: faster than float32
                out.append(("x the float32 path", measured, value, measured >= value))
    return out


def run(
    threads: int,
    rounds: int,
    min_time: float,
    selected: list[str] | None,
    with_torch: bool,
    progress: bool = True,
    steady: bool = False,
) -> dict[str, Any]:
    all_cases = cases()
    if selected:
        all_cases = [c for c in all_cases if any(s in c.label() or s == c.name for s in selected)]
    before = probes(threads)
    rows = []
    f32_times: dict[tuple, float] = {}
    for i, case in enumerate(all_cases):
        if progress:
            print(f"[{i + 1}/{len(all_cases)}] {case.label()}", file=sys.stderr, flush=True)
        q, k, v = make_inputs(case)
        out = np.empty((case.batch, case.heads_q, case.seq_q, case.head_dim_v), q.dtype)
        runners: dict[str, Callable[[], Any]] = {
            "tileattn": lambda q=q, k=k, v=v, out=out, c=case: attention(
                q, k, v, causal=c.causal, out=out, num_threads=threads
            )
        }
        if with_torch:
            tr = torch_runner(case, q, k, v, threads)
            if tr is not None:
                runners["torch"] = tr
        if any(kind == "f32" for kind, _ in case.targets):
            q32, k32, v32 = (x.astype(np.float32) for x in (q, k, v))
            out32 = np.empty(out.shape, np.float32)
            runners[F32_RUNNER] = lambda q=q32, k=k32, v=v32, out=out32, c=case: attention(
                q, k, v, causal=c.causal, out=out, num_threads=threads
            )
        if any(kind == "bandwidth" for kind, _ in case.targets):
            buffer = np.ones(int(case.kv_bytes()) // 4, np.float32)
            runners[READ_RUNNER] = lambda buffer=buffer: _core.probe_read_buffer(buffer, threads)
        probe_flops = None
        if any(kind == "peak" for kind, _ in case.targets):
            # As many iterations as take about one call's time at the probe rate measured at the start.
            f64 = case.dtype == "float64"
            runners["tileattn"]()
            t0 = time.perf_counter()
            runners["tileattn"]()
            call = time.perf_counter() - t0
            # FLOPs of one iteration on every thread
            per_iter = _core.probe_fma_run(threads, f64, 1)
            iters = max(1, round(call * before[peak_key(case.dtype)] * 1e9 / per_iter))
            probe_flops = per_iter * iters
            runners[FMA_RUNNER] = lambda f64=f64, iters=iters: _core.probe_fma_run(
                threads, f64, iters
            )
        if case.numpy:
            runners["numpy"] = lambda q=q, k=k, v=v, c=case: textbook_numpy(q, k, v, c.causal)
            runners["numpy in-place"] = lambda q=q, k=k, v=v, c=case: reference.naive_attention(
                q, k, v, causal=c.causal
            )
        times = time_interleaved(
            runners, rounds, min_time, warm_seconds=STEADY_WARM_SECONDS if steady else 0.0
        )
        if case.dtype == "float32":
            f32_times[(case.batch, case.heads_q, case.seq_q, case.head_dim, case.causal)] = times[
                "tileattn"
            ]
        rows.append((case, times, probe_flops))
    after = probes(threads)
    peaks = {key: max(before[key], after[key]) for key in before}
    results = []
    for case, times, probe_flops in rows:
        gflops = {
            name: case.flops() / t / 1e9
            for name, t in times.items()
            if name not in (READ_RUNNER, FMA_RUNNER)
        }
        if probe_flops is not None:
            gflops[FMA_RUNNER] = probe_flops / times[FMA_RUNNER] / 1e9
        checks = evaluate(case, times, peaks, f32_times, gflops.get(FMA_RUNNER))
        results.append(
            {
                "case": case.label(),
                "name": case.name,
                "dtype": case.dtype,
                "flops": case.flops(),
                "kv_bytes": case.kv_bytes(),
                "seconds": times,
                "gflops": gflops,
                "targets": [
                    {"what": w, "measured": m, "required": r, "met": ok} for w, m, r, ok in checks
                ],
            }
        )
    cfg = config()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "threads": threads,
        "timing": "steady" if steady else "bursts",
        "cpu": cfg["cpu"]["brand"] or platform.processor(),
        "kernel": cfg["kernel"]["path"],
        "probes_before": before,
        "probes_after": after,
        "peaks": peaks,
        "results": results,
    }


def format_table(report: dict[str, Any]) -> str:
    p = report["peaks"]
    lines = [
        f"tileattn bench --compare  {report['date']}  {report['cpu']}  {report['threads']} threads  "
        f"kernel: {report['kernel']}  timing: {report.get('timing', 'bursts')}",
        f"probes (best of before/after): FMA peak f32 {p['fma_f32_gflops']:.0f} GFLOP/s, "
        f"f64 {p['fma_f64_gflops']:.0f} GFLOP/s, read bandwidth {p['read_gbs']:.1f} GB/s, "
        f"threads running together {p.get('threads_together', '?')} of {report['threads']}",
        "targets against a probe use the probe timed in the case's own bursts (see the notes)",
        "",
    ]
    header = [
        "case",
        "tileattn GFLOP/s",
        "torch GFLOP/s",
        "NumPy GFLOP/s",
        "target",
        "measured",
        "required",
        "met",
    ]
    table = []
    notes = []
    for r in report["results"]:
        g = r["gflops"]
        first = [
            r["case"],
            f"{g['tileattn']:.1f}",
            f"{g['torch']:.1f}" if "torch" in g else "-",
            f"{g['numpy']:.1f}" if "numpy" in g else "-",
        ]
        if READ_RUNNER in r["seconds"]:
            side = r["kv_bytes"] / r["seconds"][READ_RUNNER] / 1e9
            best = read_share(r["kv_bytes"], r["seconds"]["tileattn"], p)
            notes.append(
                f"{r['case']}: read bandwidth = the read probe over the same {r['kv_bytes'] / 1e6:.0f} MB, "
                f"timed in the same bursts ({side:.1f} GB/s); against the best probe reading of the run "
                f"({p['read_gbs']:.1f} GB/s) tileattn reads {100 * best:.0f}%."
            )
        if FMA_RUNNER in g:
            key = peak_key(r["dtype"])
            notes.append(
                f"{r['case']}: FMA peak = the FMA probe timed in the same bursts ({g[FMA_RUNNER]:.0f} "
                f"GFLOP/s); against the best probe reading of the run ({p[key]:.0f} GFLOP/s) tileattn "
                f"reaches {100 * g['tileattn'] / p[key]:.0f}%."
            )
        if "numpy in-place" in g:
            notes.append(
                f"{r['case']}: NumPy = textbook softmax(q @ k.T * scale) @ v; an in-place NumPy variant "
                f"(reference.naive_attention) reaches {g['numpy in-place']:.1f} GFLOP/s, "
                f"{r['seconds']['numpy in-place'] / r['seconds']['tileattn']:.1f}x the time of tileattn."
            )
        targets = r["targets"] or [
            {"what": "-", "measured": float("nan"), "required": float("nan"), "met": None}
        ]
        for j, t in enumerate(targets):
            pct = t["what"].startswith("of ")
            fmt = (lambda x: f"{100 * x:.0f}%") if pct else (lambda x: f"{x:.2f}x")
            row = first if j == 0 else ["", "", "", ""]
            table.append(
                [
                    *row,
                    t["what"],
                    fmt(t["measured"]) if t["met"] is not None else "-",
                    ">= " + fmt(t["required"]) if t["met"] is not None else "-",
                    {True: "yes", False: "NO", None: "-"}[t["met"]],
                ]
            )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in table]
    met = sum(t["met"] is True for r in report["results"] for t in r["targets"])
    total = sum(t["met"] is not None for r in report["results"] for t in r["targets"])
    lines.append(
        f"\n{met} of {total} targets met. GFLOP/s = 2*B*Hq*visible_pairs*(D+Dv)/time; decode "
        "bandwidth = K and V bytes read once / time."
    )
    lines += notes
    return "\n".join(lines)


def plot(report: dict[str, Any], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    results = report["results"]
    names = [r["case"] for r in results]
    competitors = ["tileattn", "torch", "numpy"]
    width = 0.27
    fig, ax = plt.subplots(figsize=(12, 5.5))
    x = np.arange(len(names))
    for i, comp in enumerate(competitors):
        vals = [r["gflops"].get(comp, 0.0) for r in results]
        if any(vals):
            ax.bar(x + (i - 1) * width, vals, width, label=comp)
    ax.axhline(
        report["peaks"]["fma_f32_gflops"],
        color="k",
        linestyle="--",
        linewidth=1,
        label="f32 FMA peak (probe)",
    )
    ax.set_xticks(x, names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("GFLOP/s")
    ax.set_title(f"tileattn vs torch SDPA vs NumPy, {report['threads']} threads, {report['cpu']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tileattn bench", description=__doc__.splitlines()[0]
    )
    ap.add_argument(
        "--compare",
        action="store_true",
        help="run every case against torch SDPA and NumPy (default)",
    )
    ap.add_argument(
        "--threads",
        type=thread_count,
        default=None,
        help="threads for every competitor; default all",
    )
    ap.add_argument(
        "--rounds", type=positive, default=7, help="interleaved timed rounds per case (median)"
    )
    ap.add_argument(
        "--min-time",
        type=non_negative_seconds,
        default=1.0,
        help="keep adding rounds until this many seconds",
    )
    ap.add_argument(
        "--cases", nargs="*", help="only cases whose label contains one of these strings"
    )
    ap.add_argument(
        "--masks",
        action="store_true",
        help="instead: what masks, windows, biases, ALiBi and softcap cost against the plain kernel",
    )
    ap.add_argument("--no-torch", action="store_true", help="leave torch out even when installed")
    ap.add_argument(
        "--steady",
        action="store_true",
        help="time calls in steady state (after 0.3 s of back-to-back calls) instead of the 2nd-4th "
        "calls after a pause; --compare only",
    )
    ap.add_argument(
        "--json",
        type=output_path,
        default=None,
        help="where to write the JSON results (bench_compare.json, bench_masks.json)",
    )
    ap.add_argument(
        "--png",
        type=output_path,
        default="bench_compare.png",
        help="where to write the chart (needs matplotlib)",
    )
    args = ap.parse_args(argv)
    threads = args.threads or _api.get_num_threads()
    if args.masks:
        if args.steady:
            ap.error("--steady applies to --compare only")
        from . import bench_masks

        return bench_masks.main(
            threads,
            args.rounds,
            args.min_time,
            args.cases,
            not args.no_torch,
            args.json or "bench_masks.json",
        )
    args.json = args.json or "bench_compare.json"
    report = run(
        threads, args.rounds, args.min_time, args.cases, not args.no_torch, steady=args.steady
    )
    print(format_table(report))
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    wrote = [args.json]
    if args.png and plot(report, args.png):
        wrote.append(args.png)
    print("wrote " + ", ".join(wrote))
    return 0


if __name__ == "__main__":
    sys.exit(main())
