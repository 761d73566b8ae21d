"""Builds the Cython example against the installed tileattn: ``python setup.py build_ext --inplace``.

Needs Cython and setuptools (``pip install cython setuptools``). The extension links libtileattn, the
library the tileattn Python module uses, found through tileattn.get_library_dir().
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

import tileattn

extension = Extension(
    "attend",
    ["attend.pyx"],
    include_dirs=[tileattn.get_include()],
    library_dirs=[tileattn.get_library_dir()],
    runtime_library_dirs=[tileattn.get_library_dir()],
    libraries=["tileattn"],
)

setup(name="tileattn-cython-example", ext_modules=cythonize([extension]))
