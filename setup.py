"""Build script for the compiled parts of :mod:`mfirrn`.

Metadata lives in ``pyproject.toml``; this file declares the C++/Cython extensions, which
``pip install -e .`` (or any PEP 517 build) compiles from the sources in ``ext/``, and copies the project's
trained weights (``data/weights/``) into a wheel as ``mfirrn/models/weights/``, where
:func:`mfirrn.io.assets.project_weights_dir` finds them outside a checkout.
"""

import shutil
from pathlib import Path

import numpy
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

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


class BuildPy(build_py):
    """build_py that also puts ``data/weights/*`` into the built package (not for an editable install, which
    reads them from the checkout)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        dst = Path(self.build_lib) / "mfirrn" / "models" / "weights"
        dst.mkdir(parents=True, exist_ok=True)
        for src in sorted(Path(__file__).resolve().parent.joinpath("data", "weights").glob("*")):
            if src.is_file():
                shutil.copy2(src, dst / src.name)


setup(ext_modules=EXTENSIONS, cmdclass={"build_py": BuildPy})
