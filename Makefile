# django-retrytasks: `make demo` shows retries on SQLite, `make test` runs the suite on SQLite,
# PostgreSQL and MariaDB (or MySQL).
VENV ?= .venv
PY := $(VENV)/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/retrytasks
# The tests run in the database test_<name> on that server.
MYSQL_URL ?= mysql://root@127.0.0.1:3306/retrytasks
PYTEST_ARGS ?=
export PYTHONDONTWRITEBYTECODE := 1

PGBOUNCER_URL ?= postgres://postgres@127.0.0.1:6432/retrytasks_pgbouncer
PGBOUNCER_DIR ?= /tmp/retrytasks-pgbouncer

.PHONY: venv test test-sqlite test-postgres test-mariadb test-pgbouncer demo lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $@

test: test-sqlite test-postgres test-mariadb

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

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy django_retrytasks testproject bench

bench: venv
	$(PY) -m bench

clean:
	rm -rf $(VENV) db.sqlite3 .test-db.sqlite3 .pytest_cache .mypy_cache .ruff_cache
