"""Settings of the test and demo project.

SQLite in a file by default; PostgreSQL, MariaDB/MySQL (or another SQLite file) when
``DATABASE_URL`` is set, e.g. ``postgres://postgres@127.0.0.1:5432/retrytasks``,
``mysql://root@127.0.0.1:3306/retrytasks`` or ``sqlite:////tmp/x.sqlite3``.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
import django

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


# DATABASE_URL chooses the database (dj-database-url reads it); unset or empty, SQLite in a file.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    ),
}
if str(DATABASES["default"]["ENGINE"]).endswith("mysql"):
    # MariaDB and MySQL: four-byte UTF-8, as every other database stores text.
    DATABASES["default"]["OPTIONS"] = {"charset": "utf8mb4"}
    DATABASES["default"]["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
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
        **dj_database_url.parse(os.environ["LISTEN_DATABASE_URL"]),
        "TEST": {"MIRROR": "default"},
    }
    RETRYTASKS_LISTEN_DATABASE = "listen"

# Imported at start-up besides each app's tasks.py: a job row never makes a module import.
# A django.tasks module, so not on Django 5.2, which has no django.tasks.
RETRYTASKS_TASK_MODULES = ["testproject.demo.djangotasks_lazy"] if django.VERSION >= (6, 0) else []

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"django_retrytasks": {"handlers": ["console"], "level": "INFO"}},
}
