"""Build the optional C speedups; everything else is in pyproject.toml.

`gazette_trio.message._speedups` holds C versions of two per-message loops
(see its source). It is optional: where it cannot be compiled, the install
goes on and the pure-Python twins run instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gazette_trio.message._speedups",
            ["gazette_trio/message/_speedups.c"],
            optional=True,
        )
    ]
)
