"""Where ``pip install`` put the C/C++ headers, libtileattn and the CMake and pkg-config files.

Everything lives inside the installed package folder, so these work from any virtual environment::

    cmake -Dtileattn_DIR="$(python -m tileattn --cmakedir)" ...
    c++ app.cpp $(python -m tileattn --includes) $(python -m tileattn --libs)
"""

from __future__ import annotations

import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _existing(path: Path, what: str) -> str:
    if not path.exists():
        raise FileNotFoundError(
            f"tileattn's {what} is not at {path}: this tileattn was not installed with `pip install .` "
            "(a source checkout on sys.path has no compiled files)"
        )
    return str(path)


def get_include() -> str:
    """The folder to put on the include path: it holds ``tileattn/tileattn.hpp`` and ``tileattn/tileattn.h``."""
    return _existing(_PACKAGE / "include", "include folder")


def get_library_dir() -> str:
    """The folder that holds the shared library ``libtileattn`` (the one the Python module itself uses)."""
    return _existing(_PACKAGE / "lib", "library folder")


def get_library() -> str:
    """The full path of the shared library, for ``ctypes.CDLL`` and similar loaders."""
    name = {"darwin": "libtileattn.dylib", "win32": "tileattn.dll"}.get(
        sys.platform, "libtileattn.so"
    )
    return _existing(Path(get_library_dir()) / name, "shared library")


def get_cmake_dir() -> str:
    """The folder of ``tileattnConfig.cmake``: pass it as ``tileattn_DIR`` (or on ``CMAKE_PREFIX_PATH``)."""
    return _existing(_PACKAGE / "lib" / "cmake" / "tileattn", "CMake package")


def get_pkgconfig_dir() -> str:
    """The folder of ``tileattn.pc``: add it to ``PKG_CONFIG_PATH``."""
    return _existing(_PACKAGE / "lib" / "pkgconfig", "pkg-config folder")
