"""Threads: bitwise identical results for any thread count and repetition, concurrent calls from many
Python threads, the GIL released during compute, the thread-count settings, and fork safety."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import tileattn

from conftest import qkv, run

CASES = [
    dict(b=1, hq=4, hkv=4, sq=700, sk=700, d=64, causal=True),
    dict(b=3, hq=6, hkv=2, sq=129, sk=300, d=40, causal=False),
    dict(b=1, hq=8, hkv=2, sq=1, sk=3000, d=128, causal=True),
    dict(b=2, hq=2, hkv=1, sq=300, sk=100, d=16, causal=True),
]


@pytest.mark.parametrize("case", CASES, ids=["causal", "gqa", "decode", "sq>sk"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_thread_count_determinism(rng, path, case, dtype):
    case = dict(case)
    causal = case.pop("causal")
    q, k, v = qkv(rng, dtype=dtype, **case)
    base, base_lse = run(q, k, v, path, causal=causal, return_lse=True, num_threads=1)
    for threads in (2, 3, 5, 8, 2, 1):
        out, lse = run(q, k, v, path, causal=causal, return_lse=True, num_threads=threads)
        assert np.array_equal(out, base), f"{threads} threads differ from 1"
        assert np.array_equal(lse, base_lse)


def test_set_and_get_num_threads():
    old = tileattn.get_num_threads()
    try:
        tileattn.set_num_threads(3)
        assert tileattn.get_num_threads() == 3
        tileattn.set_num_threads(np.int64(1))
        assert tileattn.get_num_threads() == 1
    finally:
        tileattn.set_num_threads(old)


def test_default_threads_follow_affinity():
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    code = "import tileattn; print(tileattn.get_num_threads())"
    env = {k: v for k, v in os.environ.items() if k != "TILEATTN_NUM_THREADS"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert int(out.stdout) == cpus


@pytest.mark.parametrize(
    ("value", "expected"), [("3", 3), ("1", 1), ("zero", None), ("-2", None), ("", None)]
)
def test_environment_variable(value, expected):
    code = "import tileattn, os; print(tileattn.get_num_threads(), len(os.sched_getaffinity(0)))"
    env = {**os.environ, "TILEATTN_NUM_THREADS": value}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    got, cpus = (int(x) for x in out.stdout.split())
    assert got == (expected if expected is not None else cpus)


def test_concurrent_python_threads(rng):
    """16 Python threads calling at once get exactly the serial results."""
    problems = []
    for i in range(16):
        q, k, v = qkv(rng, b=1, hq=4, hkv=2, sq=100 + 13 * i, sk=150 + 7 * i, d=32)
        problems.append((q, k, v, i % 2 == 0))
    serial = [tileattn.attention(q, k, v, causal=c, num_threads=2) for q, k, v, c in problems]
    results: list = [None] * len(problems)
    errors: list = []
    barrier = threading.Barrier(len(problems))

    def work(i):
        try:
            barrier.wait()
            q, k, v, c = problems[i]
            for _ in range(3):
                results[i] = tileattn.attention(q, k, v, causal=c)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(problems))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got, want in zip(results, serial):
        assert np.array_equal(got, want)


def test_gil_is_released(rng):
    """While one thread computes, another Python thread keeps running."""
    q, k, v = qkv(rng, b=1, hq=8, sq=1500, sk=1500, d=64)
    done = threading.Event()
    ticks = 0

    def compute():
        for _ in range(3):
            tileattn.attention(q, k, v, num_threads=1)
        done.set()

    worker = threading.Thread(target=compute)
    worker.start()
    while not done.is_set():
        ticks += 1
    worker.join()
    assert ticks > 1000


FORK_SCRIPT = r"""
import multiprocessing, sys
import numpy as np, tileattn

def child(queue, q):
    queue.put(tileattn.attention(q, q, q, causal=True, num_threads=2))

if __name__ == "__main__":
    q = np.random.default_rng(0).standard_normal((1, 4, 200, 32)).astype(np.float32)
    expected = tileattn.attention(q, q, q, causal=True, num_threads=2)  # the pool now has workers
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(queue, q))
    proc.start()
    got = queue.get(timeout=120)
    proc.join(timeout=120)
    sys.exit(0 if proc.exitcode == 0 and np.array_equal(got, expected) else 1)
"""


def test_fork_after_use(tmp_path):
    """A forked child (multiprocessing 'fork') gets a fresh thread pool and computes correctly. Run in a
    fresh interpreter: libraries other tests import (JAX) object to fork in their own ways."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    script = tmp_path / "fork_check.py"
    script.write_text(FORK_SCRIPT)
    proc = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


AFFINITY_SCRIPT = """
import os, sys, time
import numpy as np
import tileattn

def masks():
    return {int(t): os.sched_getaffinity(int(t)) for t in os.listdir("/proc/self/task")}

only_one = sys.argv[1] == "one"
start = os.sched_getaffinity(0)
if only_one:
    os.sched_setaffinity(0, {min(start)})  # the workers, created later, inherit this mask
mask = os.sched_getaffinity(0)
rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((2, 4, 300, 64)).astype(np.float32) for _ in range(3))
want = tileattn.attention(q, k, v, causal=True, num_threads=1)
before = set(masks())  # NumPy's BLAS may have threads of its own, with the mask they started with
for burst in range(6):
    time.sleep(0.05)  # let the workers fall asleep: the wake-up path is what moves them
    for _ in range(3):
        got = tileattn.attention(q, k, v, causal=True, num_threads=4)
        assert np.array_equal(got, want), "results depend on the thread count"
after = masks()
workers = {t: m for t, m in after.items() if t not in before}
assert len(workers) == 3, f"expected 3 workers, found {len(workers)} new threads"
assert os.sched_getaffinity(0) == mask, "the caller's affinity changed"
assert all(m == mask for m in workers.values()), f"affinity changed: {workers} (was {mask})"
print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs Linux CPU affinity")
@pytest.mark.parametrize("cpus", ["all", "one"])
def test_workers_keep_their_affinity(tmp_path, cpus):
    """The pool moves a worker that the kernel queued behind the caller to another CPU (thread_pool.hpp,
    yield_point); the worker's affinity mask must be the same afterwards, and a process confined to one
    CPU must still compute correctly with several threads. Fresh interpreter: the test sets affinities."""
    script = tmp_path / "affinity_check.py"
    script.write_text(AFFINITY_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), cpus], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


FIRST_REGION_SCRIPT = """
import sys
from tileattn import _core

n = int(sys.argv[1])
first = _core.probe_threads(n, 10.0)  # the process's first parallel region: the pool starts here
grown = _core.probe_threads(n + 1, 10.0)  # a worker created for a larger region joins it at once
print(first, grown)
"""


def test_first_region_runs_on_every_thread(tmp_path):
    """A new worker joins the region it was created for. (It used to read the pool's generation when it
    started, after its creator had published the job, and so skipped it: every process's first call ran on
    the caller alone, half the speed on two threads.) Fresh interpreter: the pool must not exist yet."""
    script = tmp_path / "first_region.py"
    script.write_text(FIRST_REGION_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), "2"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == ["2", "3"], proc.stdout
