"""python -m tileattn (the main job) and show_config()."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tileattn
from tileattn.__main__ import DEFAULT_PROBLEMS, Problem, main


def run_cli(*args, check=True):
    return subprocess.run(
        [sys.executable, "-m", "tileattn", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=600,
    )


def test_help_lists_options():
    out = run_cli("--help").stdout
    for option in ("--shape", "--dtype", "--causal", "--threads", "--repeat", "--json"):
        assert option in out


def test_small_problem_table_and_json(tmp_path):
    path = tmp_path / "r.json"
    proc = run_cli(
        "--shape", "2,4,96,32", "--kv-heads", "2", "--causal", "--repeat", "1", "--json", str(path)
    )
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("case"))
    for column in ("shape", "tileattn ms", "GFLOP/s", "speed-up", "max err"):
        assert column in header
    assert any(line.startswith("custom") and "B2 H4/2 S96 D32" in line for line in lines)
    assert "[" in proc.stderr  # the progress bar
    data = json.loads(path.read_text())
    (res,) = data["results"]
    assert res["causal"] is True and res["heads_kv"] == 2
    assert res["max_err"] < 1e-5 and res["numpy_max_err"] < 1e-5
    assert res["flops"] == 2 * 2 * 4 * (96 * 97 // 2) * 64


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_dtypes(dtype):
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes", reason="ml_dtypes is not installed")
    assert main(["--shape", "1,2,40,8", "--dtype", dtype, "--repeat", "1", "--no-progress"]) == 0


def test_bad_arguments():
    proc = run_cli("--shape", "1,2,3", check=False)
    assert proc.returncode == 2 and "B,H,S,D" in proc.stderr
    proc = run_cli("--threads", "0", check=False)
    assert proc.returncode == 2


def test_default_problems_are_the_documented_ones():
    names = [p.name for p in DEFAULT_PROBLEMS]
    assert names == ["prefill", "prefill causal", "short batch", "decode (GQA)"]
    assert Problem("x", 1, 1, 1, 4, 4, 2, 2, causal=True).visible_pairs() == 10


def test_show_config(capsys):
    cfg = tileattn.show_config(as_dict=True)
    for key in ("version", "build", "cpu", "kernel", "threads", "python"):
        assert key in cfg
    assert cfg["version"] == tileattn.__version__
    assert "baseline" in cfg["build"]["compiled_isas"]
    assert cfg["kernel"]["selected_isa"] in cfg["build"]["compiled_isas"]
    assert cfg["threads"]["num_threads"] == tileattn.get_num_threads()
    assert tileattn.show_config() is None
    printed = capsys.readouterr().out
    for word in ("compiler", "features", "selected_isa", "num_threads"):
        assert word in printed


def test_isa_environment_variable():
    code = "import tileattn; print(tileattn.show_config(as_dict=True)['kernel']['selected_isa'])"
    env = {**os.environ, "TILEATTN_ISA": "baseline"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "baseline"


def test_bench_time_interleaved_warm_up():
    """The benchmark's timing: bursts of `burst` timed calls after one waking call, or after calls back to
    back for warm_seconds (--steady)."""
    from tileattn import bench

    calls = {"a": 0, "b": 0}

    def runner(name):
        def fn():
            calls[name] += 1

        return fn

    times = bench.time_interleaved(
        {"a": runner("a"), "b": runner("b")}, rounds=2, min_time=0.0, burst=3
    )
    assert set(times) == {"a", "b"}
    assert calls == {"a": 1 + 2 * (1 + 3), "b": 1 + 2 * (1 + 3)}
    calls.update(a=0, b=0)
    bench.time_interleaved({"a": runner("a")}, rounds=1, min_time=0.0, warm_seconds=0.05)
    assert calls["a"] > 1 + 1 + 3 + 10  # many back-to-back calls before the timed ones


def test_bench_compare_steady_json(tmp_path):
    """python -m tileattn bench --compare --steady on one small case: the table, and the JSON records
    the timing mode; --steady with --masks is refused."""
    from tileattn import bench

    path = tmp_path / "c.json"
    args = ["--cases", "B32 H12 S128 D32", "--rounds", "1", "--min-time", "0", "--no-torch"]
    assert bench.main([*args, "--steady", "--json", str(path), "--png", ""]) == 0
    report = json.loads(path.read_text())
    assert report["timing"] == "steady"
    assert [r["case"] for r in report["results"]] == ["B32 H12 S128 D32"]
    assert report["results"][0]["seconds"]["tileattn"] > 0
    with pytest.raises(SystemExit):
        bench.main(["--masks", "--steady", "--no-torch"])


def test_probe_read_buffer_reads_every_vector():
    """The read probe the benchmark times beside decoding: the sum of the caller's floats on 1 and 2
    threads (whole vectors per thread), and clear errors for another dtype or a strided array."""
    from tileattn import _core

    data = (np.arange(3 * 4096, dtype=np.int64) % 7).astype(np.float32)
    for threads in (1, 2):
        assert _core.probe_read_buffer(data, threads) == float(data.sum())
    with pytest.raises(TypeError, match="data"):
        _core.probe_read_buffer(data.astype(np.float64), 1)
    with pytest.raises(ValueError, match="data"):
        _core.probe_read_buffer(data[::2], 1)


def test_probe_fma_run_counts_its_flops():
    """The FMA probe the benchmark times beside the peak cases: the FLOPs it reports grow with the
    threads and the iterations (a float64 vector holds half the lanes of a float32 one), and iters below
    1 is refused naming the argument."""
    from tileattn import _core

    one = _core.probe_fma_run(1, False, 1)
    assert one > 0
    assert _core.probe_fma_run(2, False, 5) == 10 * one
    assert _core.probe_fma_run(1, True, 3) == 3 * one / 2
    with pytest.raises(ValueError, match="iters"):
        _core.probe_fma_run(1, False, 0)


def test_bench_peak_side_by_side(monkeypatch, tmp_path, capsys):
    """A case with a peak target: against the FMA probe timed in its bursts when there is one, else
    against the best probe reading of the run; python -m tileattn bench --compare times the probe beside
    the call and says both in its table."""
    from tileattn import bench

    case = bench.Case("prefill", 1, 2, 2, 192, 192, 64, False, targets=[("peak", 0.85)])
    # The best probe reading does the case's work in one second.
    peaks = {"fma_f32_gflops": case.flops() / 1e9}
    side = bench.evaluate(
        case, {"tileattn": 2.0}, peaks, {}, fma_gflops=peaks["fma_f32_gflops"] / 1.5
    )
    best = bench.evaluate(case, {"tileattn": 2.0}, peaks, {})
    assert [m for _, m, _, _ in side] == [pytest.approx(0.75)]
    assert [m for _, m, _, _ in best] == [pytest.approx(0.5)]

    monkeypatch.setattr(bench, "cases", lambda: [case])
    path = tmp_path / "p.json"
    args = ["--rounds", "1", "--min-time", "0", "--no-torch", "--json", str(path), "--png", ""]
    assert bench.main(args) == 0
    (r,) = json.loads(path.read_text())["results"]
    probe = r["gflops"][bench.FMA_RUNNER]
    assert probe > 0 and r["seconds"][bench.FMA_RUNNER] > 0
    assert r["targets"][0]["measured"] == pytest.approx(r["gflops"]["tileattn"] / probe)
    assert "FMA probe timed in the same bursts" in capsys.readouterr().out


def test_bench_bandwidth_side_by_side():
    """The decode case's share of the read bandwidth: against the read probe timed in the same bursts
    when there is one (the ratio of their times, both reading K and V's bytes), else against the best
    probe reading of the run."""
    from tileattn import bench

    case = next(c for c in bench.cases() if any(k == "bandwidth" for k, _ in c.targets))
    peaks = {"read_gbs": case.kv_bytes() / 1e9}  # reads K and V in one second
    side = bench.evaluate(case, {"tileattn": 2.0, bench.READ_RUNNER: 1.5}, peaks, {})
    best = bench.evaluate(case, {"tileattn": 2.0}, peaks, {})
    (bw_side,) = [m for what, m, _, _ in side if what == "of read bandwidth"]
    (bw_best,) = [m for what, m, _, _ in best if what == "of read bandwidth"]
    assert bw_side == pytest.approx(0.75)
    assert bw_best == pytest.approx(0.5)
