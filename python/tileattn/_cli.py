"""argparse argument types shared by `python -m tileattn` and `python -m tileattn bench`."""

from __future__ import annotations

import argparse
import math
import os

from ._api import MAX_THREADS


def positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def thread_count(text: str) -> int:
    """A thread count for the command line: 1 to tileattn's limit (each thread is an OS thread)."""
    n = positive(text)
    if n > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_THREADS}, got {n}")
    return n


def non_negative_seconds(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not (math.isfinite(x) and x >= 0):
        raise argparse.ArgumentTypeError(f"must be finite and >= 0, got {text}")
    return x


def output_path(text: str) -> str:
    """A file the run will write at its end: its folder must exist and be writable now, so that a long run
    does not fail at its last step."""
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"cannot write {text}")
    return text
