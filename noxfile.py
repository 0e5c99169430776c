"""Developer sessions: `nox -s test` is what CI runs.

- test:      generated code is fresh, lint, typecheck, then the test suite
- interop:   only the tests against Gazette's own binaries (docs/interop.md)
- lint:      ruff
- typecheck: mypy, strict on gazette_trio/
- protos:    regenerate gazette_trio/protocol from proto/
- bench:     benchmarks (not part of test); writes bench-results/*.json
- sim:       more deterministic-simulation seeds: `nox -s sim -- --seeds 5000`
"""

from __future__ import annotations

import nox

nox.options.sessions = ["test"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"
LINTED = ["gazette_trio", "tests", "tools", "benchmarks", "examples", "noxfile.py"]


def install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")


@nox.session(python=PYTHON)
def test(session: nox.Session) -> None:
    install(session)
    session.run("python", "tools/genprotos.py", "--check")
    session.run("ruff", "check", *LINTED)
    session.run("mypy")
    session.run("python", "tests/type_tests/check_types.py")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def interop(session: nox.Session) -> None:
    install(session)
    session.run("pytest", "-m", "interop", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff==0.17.6")
    session.run("ruff", "check", *LINTED)


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    install(session)
    session.run("mypy")


@nox.session(python=PYTHON)
def protos(session: nox.Session) -> None:
    install(session)
    session.run("python", "tools/genprotos.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    install(session)
    # The peer of the end-to-end benchmark; not a project dependency.
    session.install("bytewax")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PYTHON)
def sim(session: nox.Session) -> None:
    install(session)
    session.run("python", "-m", "gazette_trio.testing.sim", *session.posargs)
