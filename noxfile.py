"""The test matrix: the whole suite on Django 5.2 LTS, 6.0 and 6.1 x Python 3.12 and 3.13, each on
SQLite and PostgreSQL.

    nox                                   # every session (what .ci/run does)
    nox -s "tests-3.13(django='5.2')"     # one of them
    nox --list                            # their names

`make test` stays the quick default (one Python, the newest Django). Each session keeps its
virtualenv under .nox/ for the next run, and has test databases of its own, so that no two
sessions share one, nor two checkouts on one server, nor a session and `make test`:
PostgreSQL ``test_retrytasks_nox_<checkout>_<python>_<django>`` on the server of ``PG_SERVER``
(default ``postgres://postgres@127.0.0.1:5432``), SQLite in the session's temporary folder.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import nox

PYTHONS = ["3.12", "3.13"]
DJANGO = {"5.2": "Django>=5.2,<5.3", "6.0": "Django>=6.0,<6.1", "6.1": "Django>=6.1,<6.2"}
PG_SERVER = os.environ.get("PG_SERVER", "postgres://postgres@127.0.0.1:5432")
# Tells this checkout's databases from those of another checkout testing on the same server.
CHECKOUT = hashlib.sha1(str(Path(__file__).resolve().parent).encode()).hexdigest()[:6]

nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True


def runs(interpreter: str) -> bool:
    try:
        return subprocess.run([interpreter, "-c", ""], capture_output=True).returncode == 0
    except OSError:
        return False


def find_pyenv_interpreters() -> None:
    """Put pyenv's own Pythons on PATH when ``pythonX.Y`` is missing or a pyenv shim that
    refuses to run (the shims serve only the versions .python-version names)."""
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    for version in PYTHONS:
        found = shutil.which(f"python{version}")
        if found and runs(found):
            continue
        for folder in sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin"), reverse=True):
            if runs(f"{folder}/python{version}"):
                os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ['PATH']}"
                break


find_pyenv_interpreters()


@nox.session(python=PYTHONS)
@nox.parametrize("django", list(DJANGO))
def tests(session: nox.Session, django: str) -> None:
    session.install("-e", ".[test]", DJANGO[django])
    session.run(
        "python", "-c", f"import django; assert django.get_version().startswith('{django}.')"
    )
    tag = f"{session.python}_{django}".replace(".", "")
    pytest_args = ["python", "-m", "pytest", *session.posargs]

    session.log(f"== tests on SQLite, Django {django} ==")
    session.run(
        *pytest_args,
        env={
            "DATABASE_URL": "",
            "RETRYTASKS_TEST_SQLITE": str(Path(session.create_tmp()) / f"test-{tag}.sqlite3"),
        },
    )

    pg_url = (
        f"{PG_SERVER}/retrytasks_nox_{CHECKOUT}_{tag}"  # pytest-django tests in test_<this name>
    )
    answered = (
        subprocess.run(
            [Path(session.bin) / "python", "-m", "tests.server_available", pg_url], check=False
        ).returncode
        == 0
    )
    if not answered:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            session.error(f"PostgreSQL at {PG_SERVER} does not answer and REQUIRE_POSTGRES=1")
        session.warn(f"NOTICE: PostgreSQL at {PG_SERVER} does not answer: PostgreSQL tests skipped")
        return
    session.log(f"== tests on PostgreSQL, Django {django} ==")
    session.run(*pytest_args, env={"DATABASE_URL": pg_url})
