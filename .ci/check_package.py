"""Build the sdist and the wheel, check them, and install the wheel alone into a clean venv.

Run by ``make package`` and CI. It fails when ``twine check`` does, when the wheel lacks a
file the app needs at run time (templates, static files, migrations, ``py.typed``, the
licence), or when the installed wheel cannot be imported, set up and migrated in a Django
project outside this checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
PACKAGE = ROOT / "django_retrytasks"

# Run inside the clean venv, from a folder away from the checkout: a project that only has
# the installed wheel.
SMOKE_TEST = """
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                    "django.contrib.admin", "django.contrib.sessions",
                    "django.contrib.messages", "django.contrib.staticfiles",
                    "django_retrytasks"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "smoke.sqlite3"}},
    TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}],
    STATIC_URL="static/",
    USE_TZ=True,
)
django.setup()
from django.core.management import call_command
from django.contrib.staticfiles import finders
from django.template.loader import get_template
import django_retrytasks
from django_retrytasks import app, RetryStrategy
from django_retrytasks.models import Job
assert "site-packages" in django_retrytasks.__file__, django_retrytasks.__file__
call_command("migrate", verbosity=0)
get_template("admin/django_retrytasks/dashboard.html")
assert finders.find("django_retrytasks/admin.css")
task = app.task(retry=RetryStrategy(max_attempts=2), name="smoke.noop")(lambda: None)
job_id = task.defer()
assert Job.objects.get(pk=job_id).status == "todo"
print("the wheel imports, migrates and defers a job in a clean venv")
"""


def run(*command: str | Path, cwd: Path = ROOT) -> None:
    print("+", " ".join(str(part)[:60] for part in command), flush=True)
    subprocess.run([str(part) for part in command], cwd=cwd, check=True)


def expected_wheel_files() -> set[str]:
    """Every file under the package that is not Python source nor cache must be shipped."""
    names = {"django_retrytasks/py.typed"}
    for folder in ("templates", "static", "migrations"):
        for path in (PACKAGE / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                names.add(path.relative_to(ROOT).as_posix())
    return names


def main() -> int:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    shutil.rmtree(DIST, ignore_errors=True)
    run(sys.executable, "-m", "build", "--outdir", DIST, ".")
    wheel = DIST / f"django_retrytasks-{version}-py3-none-any.whl"
    sdist = DIST / f"django_retrytasks-{version}.tar.gz"
    run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)

    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    missing = expected_wheel_files() - shipped
    licence = f"django_retrytasks-{version}.dist-info/licenses/LICENSE"
    if licence not in shipped:
        missing.add(licence)
    strays = sorted(name for name in shipped if name.split("/")[0] in ("tests", "testproject"))
    if missing or strays:
        print(f"wheel lacks {sorted(missing)}; carries {strays}", file=sys.stderr)
        return 1
    print(f"{wheel.name}: {len(shipped)} files, templates, static files, migrations and py.typed")

    with tempfile.TemporaryDirectory(prefix="retrytasks-wheel-") as folder:
        venv = Path(folder) / "venv"
        run(sys.executable, "-m", "venv", venv)
        run(venv / "bin" / "pip", "install", "-q", wheel)
        run(venv / "bin" / "python", "-I", "-c", SMOKE_TEST, cwd=Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
