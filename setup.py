"""Build script for the compiled parts of :mod:`mfirrn`.

Metadata lives in ``pyproject.toml``; this file only declares C++/Cython extensions, which
``pip install -e .`` (or any PEP 517 build) compiles from the sources in ``ext/``.
"""

from setuptools import setup

EXTENSIONS: list = []

setup(ext_modules=EXTENSIONS)
