"""Sphinx configuration of the django-retrytasks documentation (``make docs``).

Pages are Markdown (MyST); the API reference comes from docstrings (autodoc), which needs
Django set up with the test project's settings. Nothing is fetched from the network while
building: no intersphinx, and the theme comes from PyPI with the dev dependencies.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
os.environ["DATABASE_URL"] = ""  # the default SQLite file; nothing is read from it
django.setup()

project = "django-retrytasks"
author = "The django-retrytasks developers"
copyright = "2026, The django-retrytasks developers"
# The one version source is pyproject.toml.
release = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Type hints name Django and standard-library classes that have no page here.
nitpicky = False

html_theme = "furo"
html_title = f"django-retrytasks {release}"
html_static_path: list[str] = []

# Annotations written as strings under TYPE_CHECKING: "Job" is the record strategies get.
autodoc_type_aliases = {"Job": "django_retrytasks.jobs.Job"}
