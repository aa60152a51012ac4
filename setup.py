"""Build script for the compiled parts of :mod:`mfirrn`.

Metadata lives in ``pyproject.toml``; this file only declares C++/Cython extensions, which
``pip install -e .`` (or any PEP 517 build) compiles from the sources in ``ext/``.
"""

import numpy
from setuptools import Extension, setup

EXTENSIONS: list = [
    Extension(
        "mfirrn.render._raster",
        ["ext/_raster.pyx", "ext/raster.cpp"],
        include_dirs=["ext", numpy.get_include()],
        language="c++",
        # -ffp-contract=off: no fused multiply-add, so depths match the numpy reference twin bit for bit
        extra_compile_args=["-O3", "-std=c++17", "-fopenmp", "-ffp-contract=off"],
        extra_link_args=["-fopenmp"],
    ),
]

setup(ext_modules=EXTENSIONS)
