"""python -m tileattn bench --masks: what masks, windows, biases and the other options cost.

Two kinds of case, each timed interleaved with its baseline (the plain kernel on the same q, k, v) in the
same minute, so that the ratio means something on a shared machine:

* skipping: a sliding window or a block-diagonal (document) mask at S = 8192 against plain causal
  attention; the ratio is the speed-up (target: window(255, 0) >= 8x, 16 documents >= 4x);
* overhead: one option that hides no score (every score stays live) against the plain kernel; the ratio is
  the extra time per live score (target: at most 15 %).

torch SDPA runs on the same data with the same option expressed as its ``attn_mask`` (a boolean mask or a
float bias of Sq x Sk), where it can be: torch has no softcap, and it computes every masked score.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import numpy as np

from . import _api, reference
from ._api import attention
from ._config import config
from .bench import SETTLE_SECONDS, time_interleaved


@dataclass
class MaskCase:
    name: str
    seq: int
    head_dim: int
    options: Callable[
        [np.random.Generator, int, int], dict[str, Any]
    ]  # (rng, heads, seq) -> kwargs
    kind: str  # "speedup" (baseline time / time >= target) or "overhead" (time / baseline - 1 <= target)
    target: float
    base_causal: bool = False
    heads: int = 8
    extra: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        return f"B1 H{self.heads} S{self.seq} D{self.head_dim} {self.name}"


def _doc_mask(seq: int, docs: int) -> np.ndarray:
    doc = np.arange(seq) * docs // seq
    return doc[:, None] == doc[None, :]


def mask_cases() -> list[MaskCase]:
    """The rows of the masking speed targets (issue: masks, variable lengths...)."""
    overhead: list[MaskCase] = []
    for d in (64, 128):
        s = 2048
        overhead += [
            MaskCase(
                "bias (H, S, S) float32",
                s,
                d,
                lambda rng, h, s: {"bias": rng.standard_normal((h, s, s), dtype=np.float32)},
                "overhead",
                0.15,
            ),
            MaskCase(
                "bias (S, S) float32",
                s,
                d,
                lambda rng, h, s: {"bias": rng.standard_normal((s, s), dtype=np.float32)},
                "overhead",
                0.15,
            ),
            MaskCase(
                "bias per key (B, 1, 1, S)",
                s,
                d,
                lambda rng, h, s: {"bias": rng.standard_normal((1, 1, 1, s), dtype=np.float32)},
                "overhead",
                0.15,
            ),
            MaskCase(
                "alibi",
                s,
                d,
                lambda rng, h, s: {"alibi_slopes": 2.0 ** (-8.0 * np.arange(1, h + 1) / h)},
                "overhead",
                0.15,
            ),
            MaskCase("softcap 30", s, d, lambda rng, h, s: {"softcap": 30.0}, "overhead", 0.15),
            MaskCase(
                "mask (S, S) all true",
                s,
                d,
                lambda rng, h, s: {"mask": np.ones((s, s), bool)},
                "overhead",
                0.15,
            ),
            MaskCase(
                "q/kv lengths = S",
                s,
                d,
                lambda rng, h, s: {"q_lengths": np.array([s]), "kv_lengths": np.array([s])},
                "overhead",
                0.15,
            ),
            MaskCase(
                "window (S, S)",
                s,
                d,
                lambda rng, h, s: {"window": (s, s)},
                "overhead",
                0.15,
            ),
        ]
    return [
        MaskCase(
            "causal window (255, 0)",
            8192,
            64,
            lambda rng, h, s: {"causal": True, "window": (255, 0)},
            "speedup",
            8.0,
            base_causal=True,
        ),
        MaskCase(
            "16-document mask",
            8192,
            64,
            lambda rng, h, s: {"mask": _doc_mask(s, 16)},
            "speedup",
            4.0,
            base_causal=True,
        ),
        MaskCase(
            "16-document mask, causal",
            8192,
            64,
            lambda rng, h, s: {"mask": _doc_mask(s, 16), "causal": True},
            "speedup",
            4.0,
            base_causal=True,
        ),
        *overhead,
    ]


def torch_mask(options: dict[str, Any], seq: int):
    """The option as torch SDPA's attn_mask (None when torch cannot express it)."""
    import torch

    if "softcap" in options:
        return None
    allowed = np.ones((seq, seq), bool)
    bias = np.zeros((1, 1, 1, 1), np.float32)
    float_mask = False
    if options.get("causal"):
        allowed &= reference.visible_keys(seq, seq, True)
    if "window" in options:
        left, right = options["window"]
        i, j = np.arange(seq)[:, None], np.arange(seq)[None, :]
        allowed &= (j >= i - left) & (j <= i + right)
    if "mask" in options:
        allowed &= options["mask"]
    if "bias" in options:
        bias = options["bias"].astype(np.float32)
        float_mask = True
    if "alibi_slopes" in options:
        slopes = np.asarray(options["alibi_slopes"], np.float32)[:, None, None]
        dist = np.abs(np.arange(seq)[:, None] - np.arange(seq)[None, :]).astype(np.float32)
        bias = bias - slopes * dist
        float_mask = True
    if not float_mask:
        return torch.from_numpy(np.ascontiguousarray(allowed))
    full = np.where(allowed, bias, np.float32(-np.inf)).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(full.reshape((1,) * (4 - full.ndim) + full.shape)))


def _torch_runner(torch: Any, q, k, v, mask) -> Callable[[], Any]:
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def run():
        with torch.no_grad():
            return sdpa(tq, tk, tv, attn_mask=mask)

    return run


def run(
    threads: int, rounds: int, min_time: float, selected: list[str] | None, with_torch: bool
) -> dict[str, Any]:
    cases = mask_cases()
    if selected:
        cases = [c for c in cases if any(s in c.label() for s in selected)]
    torch = None
    if with_torch:
        try:
            import torch as torch_module

            torch = torch_module
            torch.set_num_threads(threads)
        except ImportError:
            torch = None
    results = []
    for n, case in enumerate(cases):
        print(f"[{n + 1}/{len(cases)}] {case.label()}", file=sys.stderr, flush=True)
        rng = np.random.default_rng(n)
        shape = (1, case.heads, case.seq, case.head_dim)
        q, k, v = (rng.standard_normal(shape, dtype=np.float32) for _ in range(3))
        options = case.options(rng, case.heads, case.seq)
        out = np.empty_like(q)
        runners: dict[str, Callable[[], Any]] = {
            "tileattn": partial(attention, q, k, v, out=out, num_threads=threads, **options),
            "baseline": partial(
                attention, q, k, v, causal=case.base_causal, out=out, num_threads=threads
            ),
        }
        if torch is not None:
            tmask = torch_mask(options, case.seq)
            if tmask is not None:
                runners["torch"] = _torch_runner(torch, q, k, v, tmask)
        times = time_interleaved(runners, rounds, min_time)
        ratio = (
            times["baseline"] / times["tileattn"]
            if case.kind == "speedup"
            else times["tileattn"] / times["baseline"] - 1.0
        )
        met = ratio >= case.target if case.kind == "speedup" else ratio <= case.target
        results.append(
            {
                "case": case.label(),
                "kind": case.kind,
                "baseline": "plain causal" if case.base_causal else "plain",
                "seconds": times,
                "ratio": ratio,
                "target": case.target,
                "met": bool(met),
            }
        )
    cfg = config()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "threads": threads,
        "cpu": cfg["cpu"]["brand"],
        "kernel": cfg["kernel"]["path"],
        "settle_seconds": SETTLE_SECONDS,
        "results": results,
    }


def format_table(report: dict[str, Any]) -> str:
    lines = [
        f"tileattn bench --masks  {report['date']}  {report['cpu']}  {report['threads']} threads  "
        f"kernel: {report['kernel']}",
        "",
    ]
    header = [
        "case",
        "tileattn ms",
        "baseline",
        "baseline ms",
        "torch ms",
        "measured",
        "target",
        "met",
    ]
    rows = []
    for r in report["results"]:
        s = r["seconds"]
        speedup = r["kind"] == "speedup"
        rows.append(
            [
                r["case"],
                f"{1e3 * s['tileattn']:.1f}",
                r["baseline"],
                f"{1e3 * s['baseline']:.1f}",
                f"{1e3 * s['torch']:.1f}" if "torch" in s else "-",
                f"{r['ratio']:.2f}x faster" if speedup else f"{100 * r['ratio']:+.1f}% per score",
                f">= {r['target']:.0f}x" if speedup else f"<= +{100 * r['target']:.0f}%",
                "yes" if r["met"] else "NO",
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    met = sum(r["met"] for r in report["results"])
    lines.append(
        f"\n{met} of {len(report['results'])} targets met. Medians of interleaved bursts; every option case "
        "keeps every score live, so its time ratio is the cost per live score. torch: SDPA with the option "
        "as attn_mask (computes every score; no softcap)."
    )
    return "\n".join(lines)


def main(threads: int | None, rounds: int, min_time: float, selected, with_torch, json_path) -> int:
    import json

    report = run(threads or _api.get_num_threads(), rounds, min_time, selected, with_torch)
    print(format_table(report))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {json_path}")
    return 0
