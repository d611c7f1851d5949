# django-retrytasks: `make demo` shows retries on SQLite, `make test` runs the suite on SQLite,
# PostgreSQL and MariaDB (or MySQL).
VENV ?= .venv
PY := $(VENV)/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/retrytasks
# The tests run in the database test_<name> on that server.
MYSQL_URL ?= mysql://root@127.0.0.1:3306/retrytasks
PYTEST_ARGS ?=
DEMO_PORT ?= 8000
export PYTHONDONTWRITEBYTECODE := 1

PGBOUNCER_URL ?= postgres://postgres@127.0.0.1:6432/retrytasks_pgbouncer
PGBOUNCER_DIR ?= /tmp/retrytasks-pgbouncer

.PHONY: venv test browser test-sqlite test-postgres test-mariadb test-pgbouncer demo demo-admin \
	docs matrix package lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -e ".[dev]"
	@.ci/ensure-mysql-client $(VENV)
	touch $@

test: browser test-sqlite test-postgres test-mariadb

# The admin's browser test needs Chromium: installed with apt when possible, else skipped
# with a notice (and under CI=true, a failure).
browser:
	@.ci/ensure-chromium

test-sqlite: venv
	@echo "== tests on SQLite =="
	env -u DATABASE_URL $(PY) -m pytest $(PYTEST_ARGS)

test-postgres: venv
	@if $(PY) -m tests.server_available "$(PG_URL)"; then \
		echo "== tests on PostgreSQL =="; \
		DATABASE_URL="$(PG_URL)" $(PY) -m pytest $(PYTEST_ARGS); \
	elif [ "$$REQUIRE_POSTGRES" = "1" ]; then \
		echo "PostgreSQL at $(PG_URL) does not answer and REQUIRE_POSTGRES=1" >&2; exit 1; \
	else \
		echo "NOTICE: PostgreSQL at $(PG_URL) does not answer: PostgreSQL tests skipped"; \
	fi

test-mariadb: venv
	@if $(PY) -m tests.server_available "$(MYSQL_URL)"; then \
		echo "== tests on MariaDB/MySQL =="; \
		DATABASE_URL="$(MYSQL_URL)" $(PY) -m pytest $(PYTEST_ARGS); \
	elif [ "$$REQUIRE_MARIADB" = "1" ]; then \
		echo "MariaDB/MySQL at $(MYSQL_URL) does not answer and REQUIRE_MARIADB=1" >&2; exit 1; \
	else \
		echo "NOTICE: MariaDB/MySQL at $(MYSQL_URL) does not answer: MariaDB tests skipped"; \
	fi

# The PostgreSQL suite through a real PgBouncer in transaction pooling mode (CI runs it).
test-pgbouncer: venv
	@echo "== tests on PostgreSQL through PgBouncer (transaction pooling) =="
	$(PY) -m tests.pgbouncer start --dir $(PGBOUNCER_DIR)
	psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS test_retrytasks_pgbouncer WITH (FORCE)"
	DATABASE_URL="$(PGBOUNCER_URL)" DATABASE_POOLED=1 PGBOUNCER_LOG=$(PGBOUNCER_DIR)/pgbouncer.log \
		$(PY) -m pytest --reuse-db $(PYTEST_ARGS); status=$$?; \
	$(PY) -m tests.pgbouncer stop --dir $(PGBOUNCER_DIR); \
	psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS test_retrytasks_pgbouncer WITH (FORCE)"; \
	exit $$status

demo: venv
	env -u DATABASE_URL $(PY) manage.py migrate -v0
	env -u DATABASE_URL $(PY) manage.py demo
	@echo
	@echo "See these jobs, their attempts and tracebacks in the admin: make demo-admin"

# The admin on the demo's jobs: a superuser demo/demo and Django's development server.
demo-admin: venv
	@env -u DATABASE_URL $(PY) manage.py migrate -v0
	@env -u DATABASE_URL $(PY) manage.py shell -v0 -c "from django.contrib.auth.models import User; \
		user = User.objects.filter(username='demo').first() or User(username='demo'); \
		user.is_staff = user.is_superuser = True; user.set_password('demo'); user.save()"
	@echo
	@echo "Open http://127.0.0.1:$(DEMO_PORT)/admin/django_retrytasks/job/ and log in as demo, password demo."
	@echo "(Ctrl-C stops the server; make demo adds more jobs.)"
	@echo
	env -u DATABASE_URL DJANGO_DEBUG=1 $(PY) manage.py runserver 127.0.0.1:$(DEMO_PORT)

# The documentation site, warnings as errors; open build/docs/index.html.
docs: venv
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs build/docs

# The suite on every supported Django and Python, SQLite and PostgreSQL (see noxfile.py).
matrix: venv
	$(VENV)/bin/nox

# sdist and wheel in dist/, checked by twine, then the wheel installed alone into a clean venv.
package: venv
	$(PY) .ci/check_package.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy django_retrytasks testproject bench

bench: venv
	$(PY) -m bench

clean:
	rm -rf $(VENV) .nox build dist db.sqlite3 .test-db.sqlite3 .pytest_cache .mypy_cache .ruff_cache
