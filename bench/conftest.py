"""pytest-benchmark suite of the CPU-speed cases: `python -m pytest bench --benchmark-only`.

Each case of `tileattn.bench.cases()` is a benchmark group holding tileattn, plain NumPy (the textbook
`softmax(q @ k.T * scale) @ v`) and torch SDPA when torch is installed. Before each benchmark the suite
pauses so that the previous competitor's spinning threads (OpenMP, OpenBLAS) are idle.
"""

from __future__ import annotations

import time

import pytest

from tileattn import bench


@pytest.fixture(autouse=True)
def _settle():
    time.sleep(bench.SETTLE_SECONDS)
    yield


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(
            pytest.mark.filterwarnings("ignore::pytest_benchmark.logger.PytestBenchmarkWarning")
        )
