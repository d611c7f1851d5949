"""Settings of the test and demo project.

SQLite in a file by default; PostgreSQL, MariaDB/MySQL (or another SQLite file) when
``DATABASE_URL`` is set, e.g. ``postgres://postgres@127.0.0.1:5432/retrytasks``,
``mysql://root@127.0.0.1:3306/retrytasks`` or ``sqlite:////tmp/x.sqlite3``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "not-secret-test-project-only"
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_retrytasks",
    "testproject.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "testproject.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def database_from_url(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        name = unquote(parts.path[1:] if parts.path.startswith("//") else parts.path)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name or BASE_DIR / "db.sqlite3"}
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "postgres",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    if parts.scheme in ("mysql", "mariadb"):
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": unquote(parts.path.lstrip("/")) or "retrytasks",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
        }
    raise ValueError(
        f"DATABASE_URL must start with sqlite://, postgres:// or mysql://, got {url!r}"
    )


DATABASES = {
    "default": database_from_url(os.environ["DATABASE_URL"])
    if os.environ.get("DATABASE_URL")
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}
}
if str(DATABASES["default"]["ENGINE"]).endswith("sqlite3"):
    # Tests use a file so that worker threads and subprocesses see the same database.
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("RETRYTASKS_TEST_SQLITE", str(BASE_DIR / ".test-db.sqlite3"))
    }

# Django's task framework (Django 6.0+) backed by django-retrytasks; ignored by older Django.
TASKS = {
    "default": {
        "BACKEND": "django_retrytasks.backends.RetryTasksBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {},
    }
}

if os.environ.get("DATABASE_POOLED") == "1":
    # DATABASE_URL goes through a transaction pooler (PgBouncer): the one setting Django needs.
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
if os.environ.get("LISTEN_DATABASE_URL"):
    # A connection straight to PostgreSQL for the workers' LISTEN (the tests' own database).
    DATABASES["listen"] = {
        **database_from_url(os.environ["LISTEN_DATABASE_URL"]),
        "TEST": {"MIRROR": "default"},
    }
    RETRYTASKS_LISTEN_DATABASE = "listen"

# Imported at start-up besides each app's tasks.py: a job row never makes a module import.
RETRYTASKS_TASK_MODULES = ["testproject.demo.djangotasks_lazy"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"django_retrytasks": {"handlers": ["console"], "level": "INFO"}},
}
