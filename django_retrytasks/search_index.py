"""The text index behind the admin's search, one that fits each database.

The search looks for words in two kinds of documents (see :mod:`django_retrytasks.admin.search`):

- a job: its task name, lock and queueing lock (:data:`JOB_DOCUMENT`);
- each attempt that recorded an error: its job's task name, the error type and the first
  :data:`MESSAGE_CHARS` characters of the message (:data:`ATTEMPT_DOCUMENT`).

Words inside a string are found by trigrams. On PostgreSQL: the ``pg_trgm`` extension (created
here when the role may; without it the search still works, by scanning) and two narrow tables
of documents, each with a GIN index: ``django_retrytasks_attempt_search`` for the attempts
(narrow, because the attempts' own rows carry tracebacks, and reading those to check a common
word cost more than the whole page may take) and ``django_retrytasks_job_search`` for the jobs
(apart, because an index on the job table is entered again each time a job moves). On MySQL and
MariaDB: the same narrow table, without an index over the words (see below). On SQLite: an
FTS5 table with the ``trigram`` tokenizer holding the attempts' documents (SQLite >= 3.34 with
FTS5, as Python's builds have it; without FTS5 the search scans). Jobs get no table of their
own on SQLite: keeping one in step on every ``defer()`` cost ten times the insert itself.

Triggers keep the documents in step with the rows, whoever writes them.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError, transaction

logger = logging.getLogger(__name__)

#: Characters of an error message that the search reads (what the job list reads too).
MESSAGE_CHARS = 500
SEARCH_TABLE = "django_retrytasks_attempt_search"
#: PostgreSQL only, since migration 0011: the jobs' documents.
JOB_SEARCH_TABLE = "django_retrytasks_job_search"
JOB_TABLE = "django_retrytasks_job"
ATTEMPT_TABLE = "django_retrytasks_attempt"


def job_document(table: str = JOB_TABLE, vendor: str = "") -> str:
    """The SQL text of a job's document, over the job table (or alias) ``table``."""
    if vendor == "mysql":
        return mysql_document(
            f"{table}.task_name", f"COALESCE({table}.`lock`, '')", f"COALESCE({table}.queueing_lock, '')"
        )
    return (
        f"({table}.task_name || ' ' || COALESCE({table}.lock, '') || ' ' "
        f"|| COALESCE({table}.queueing_lock, ''))"
    )


def attempt_document(job: str, attempt: str, vendor: str = "") -> str:
    """The SQL text of an attempt's document, over the job ``job`` and attempt ``attempt``."""
    if vendor == "mysql":
        return mysql_document(
            f"{job}.task_name",
            f"{attempt}.error_type",
            f"SUBSTR({attempt}.error_message, 1, {MESSAGE_CHARS})",
        )
    return (
        f"({job}.task_name || ' ' || {attempt}.error_type || ' ' "
        f"|| SUBSTR({attempt}.error_message, 1, {MESSAGE_CHARS}))"
    )


def mysql_document(*parts: str) -> str:
    """MySQL's form: ``||`` is OR there, and the columns' collations fold accents or not at
    all. Lower case under a binary collation: a search ignores case only, as ILIKE does
    (the words searched are lowered too)."""
    return f"LOWER(CONCAT_WS(' ', {', '.join(parts)}) COLLATE utf8mb4_bin)"


#: Only attempts with an error have a document.
HAS_ERROR = "({row}.error_type <> '' OR {row}.error_message <> '')"

# --- PostgreSQL -------------------------------------------------------------------------------

POSTGRES_EXTENSION = """
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'django-retrytasks: pg_trgm is not available (%); the admin search scans', SQLERRM;
END $$;
"""

# The per-row triggers of migration 0008 (successes, which have no error, skip the function),
# which 0010 replaces and its backwards step puts back.
_POSTGRES_ROW_TRIGGERS = f"""CREATE TRIGGER django_retrytasks_attempt_search_insert AFTER INSERT ON {ATTEMPT_TABLE}
    FOR EACH ROW WHEN {HAS_ERROR.format(row="NEW")}
    EXECUTE FUNCTION django_retrytasks_attempt_search_sync();
CREATE TRIGGER django_retrytasks_attempt_search_change
    AFTER UPDATE OF error_type, error_message, job_id OR DELETE ON {ATTEMPT_TABLE}
    FOR EACH ROW EXECUTE FUNCTION django_retrytasks_attempt_search_sync();
"""

POSTGRES_CREATE = f"""
CREATE TABLE {SEARCH_TABLE} (
    attempt_id bigint PRIMARY KEY,
    job_id bigint NOT NULL,
    body text NOT NULL
);
INSERT INTO {SEARCH_TABLE} (attempt_id, job_id, body)
    SELECT a.id, a.job_id, {attempt_document("j", "a")}
    FROM {ATTEMPT_TABLE} a JOIN {JOB_TABLE} j ON j.id = a.job_id
    WHERE {HAS_ERROR.format(row="a")};

CREATE FUNCTION django_retrytasks_attempt_search_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM {SEARCH_TABLE} WHERE attempt_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND {HAS_ERROR.format(row="NEW")} THEN
        INSERT INTO {SEARCH_TABLE} (attempt_id, job_id, body)
            SELECT NEW.id, NEW.job_id, {attempt_document("j", "NEW")}
            FROM {JOB_TABLE} j WHERE j.id = NEW.job_id;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION django_retrytasks_attempt_search_clear() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE {SEARCH_TABLE};
    RETURN NULL;
END $$;

-- Successes (no error) skip the function altogether.
{_POSTGRES_ROW_TRIGGERS}CREATE TRIGGER django_retrytasks_attempt_search_truncate AFTER TRUNCATE ON {ATTEMPT_TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION django_retrytasks_attempt_search_clear();
"""

# The trigram indexes, only where pg_trgm could be created.
POSTGRES_INDEXES = f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX retrytasks_job_search_idx ON {JOB_TABLE}
            USING gin ({job_document()} gin_trgm_ops);
        CREATE INDEX retrytasks_attempt_search_idx ON {SEARCH_TABLE} USING gin (body gin_trgm_ops);
    END IF;
END $$;
"""

POSTGRES_DROP = f"""
DROP INDEX IF EXISTS retrytasks_job_search_idx;
DROP TRIGGER IF EXISTS django_retrytasks_attempt_search_insert ON {ATTEMPT_TABLE};
DROP TRIGGER IF EXISTS django_retrytasks_attempt_search_change ON {ATTEMPT_TABLE};
DROP TRIGGER IF EXISTS django_retrytasks_attempt_search_delete ON {ATTEMPT_TABLE};
DROP FUNCTION IF EXISTS django_retrytasks_attempt_search_inserted();
DROP FUNCTION IF EXISTS django_retrytasks_attempt_search_deleted();
DROP TRIGGER IF EXISTS django_retrytasks_attempt_search_truncate ON {ATTEMPT_TABLE};
DROP FUNCTION IF EXISTS django_retrytasks_attempt_search_sync();
DROP FUNCTION IF EXISTS django_retrytasks_attempt_search_clear();
DROP TABLE IF EXISTS {SEARCH_TABLE};
"""

# Since migration 0010: attempts stored or deleted many at once (the worker stores outcomes in
# batches, retention deletes in batches) keep their documents in step with one statement per
# statement, not a function call per row. Changes of an attempt's error stay per row (rare).
POSTGRES_PER_STATEMENT = f"""
CREATE OR REPLACE FUNCTION django_retrytasks_attempt_search_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {SEARCH_TABLE} (attempt_id, job_id, body)
        SELECT a.id, a.job_id, {attempt_document("j", "a")}
        FROM inserted a JOIN {JOB_TABLE} j ON j.id = a.job_id
        WHERE {HAS_ERROR.format(row="a")};
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION django_retrytasks_attempt_search_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {SEARCH_TABLE} WHERE attempt_id IN (SELECT id FROM deleted);
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS django_retrytasks_attempt_search_insert ON {ATTEMPT_TABLE};
DROP TRIGGER IF EXISTS django_retrytasks_attempt_search_change ON {ATTEMPT_TABLE};
CREATE TRIGGER django_retrytasks_attempt_search_insert AFTER INSERT ON {ATTEMPT_TABLE}
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION django_retrytasks_attempt_search_inserted();
CREATE TRIGGER django_retrytasks_attempt_search_delete AFTER DELETE ON {ATTEMPT_TABLE}
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION django_retrytasks_attempt_search_deleted();
CREATE TRIGGER django_retrytasks_attempt_search_change
    AFTER UPDATE OF error_type, error_message, job_id ON {ATTEMPT_TABLE}
    FOR EACH ROW EXECUTE FUNCTION django_retrytasks_attempt_search_sync();
"""

POSTGRES_PER_ROW = f"""
DROP TRIGGER IF EXISTS django_retrytasks_attempt_search_insert ON {ATTEMPT_TABLE};
DROP TRIGGER IF EXISTS django_retrytasks_attempt_search_delete ON {ATTEMPT_TABLE};
DROP TRIGGER IF EXISTS django_retrytasks_attempt_search_change ON {ATTEMPT_TABLE};
DROP FUNCTION IF EXISTS django_retrytasks_attempt_search_inserted();
DROP FUNCTION IF EXISTS django_retrytasks_attempt_search_deleted();
{_POSTGRES_ROW_TRIGGERS}"""


# Since migration 0011: the jobs' documents in a narrow table of their own. A trigram index on
# the job table itself was entered again by every update that moves a job (claim, outcome,
# retry): about 45 µs of the server's time per job on a drain, a fifth of it. The documents
# change only when a job's task name, lock or queueing lock does.
POSTGRES_JOB_SEARCH = f"""
CREATE TABLE {JOB_SEARCH_TABLE} (job_id bigint PRIMARY KEY, body text NOT NULL);
INSERT INTO {JOB_SEARCH_TABLE} (job_id, body) SELECT j.id, {job_document("j")} FROM {JOB_TABLE} j;

CREATE FUNCTION django_retrytasks_job_search_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {JOB_SEARCH_TABLE} (job_id, body) SELECT j.id, {job_document("j")} FROM inserted j;
    RETURN NULL;
END $$;

CREATE FUNCTION django_retrytasks_job_search_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {JOB_SEARCH_TABLE} SET body = {job_document("NEW")} WHERE job_id = NEW.id;
    RETURN NULL;
END $$;

CREATE FUNCTION django_retrytasks_job_search_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {JOB_SEARCH_TABLE} WHERE job_id IN (SELECT id FROM deleted);
    RETURN NULL;
END $$;

CREATE FUNCTION django_retrytasks_job_search_clear() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE {JOB_SEARCH_TABLE};
    RETURN NULL;
END $$;

CREATE TRIGGER django_retrytasks_job_search_insert AFTER INSERT ON {JOB_TABLE}
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION django_retrytasks_job_search_inserted();
CREATE TRIGGER django_retrytasks_job_search_change
    AFTER UPDATE OF task_name, lock, queueing_lock ON {JOB_TABLE}
    FOR EACH ROW WHEN (
        OLD.task_name IS DISTINCT FROM NEW.task_name OR OLD.lock IS DISTINCT FROM NEW.lock
        OR OLD.queueing_lock IS DISTINCT FROM NEW.queueing_lock
    )
    EXECUTE FUNCTION django_retrytasks_job_search_changed();
CREATE TRIGGER django_retrytasks_job_search_delete AFTER DELETE ON {JOB_TABLE}
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION django_retrytasks_job_search_deleted();
CREATE TRIGGER django_retrytasks_job_search_truncate AFTER TRUNCATE ON {JOB_TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION django_retrytasks_job_search_clear();

DROP INDEX IF EXISTS retrytasks_job_search_idx;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX retrytasks_job_search_idx ON {JOB_SEARCH_TABLE} USING gin (body gin_trgm_ops);
    END IF;
END $$;
"""

POSTGRES_JOB_SEARCH_DROP = f"""
DROP TRIGGER IF EXISTS django_retrytasks_job_search_insert ON {JOB_TABLE};
DROP TRIGGER IF EXISTS django_retrytasks_job_search_change ON {JOB_TABLE};
DROP TRIGGER IF EXISTS django_retrytasks_job_search_delete ON {JOB_TABLE};
DROP TRIGGER IF EXISTS django_retrytasks_job_search_truncate ON {JOB_TABLE};
DROP FUNCTION IF EXISTS django_retrytasks_job_search_inserted();
DROP FUNCTION IF EXISTS django_retrytasks_job_search_changed();
DROP FUNCTION IF EXISTS django_retrytasks_job_search_deleted();
DROP FUNCTION IF EXISTS django_retrytasks_job_search_clear();
DROP TABLE IF EXISTS {JOB_SEARCH_TABLE};
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX retrytasks_job_search_idx ON {JOB_TABLE}
            USING gin ({job_document()} gin_trgm_ops);
    END IF;
END $$;
"""


# --- SQLite -----------------------------------------------------------------------------------

SQLITE_CREATE_TABLE = (
    f"CREATE VIRTUAL TABLE {SEARCH_TABLE} USING fts5(job_id UNINDEXED, body, tokenize='trigram')"
)

_SQLITE_DOCUMENT = f"""
    INSERT INTO {SEARCH_TABLE} (rowid, job_id, body)
        SELECT NEW.id, NEW.job_id, {attempt_document("j", "NEW")}
        FROM {JOB_TABLE} j WHERE j.id = NEW.job_id AND {HAS_ERROR.format(row="NEW")};"""

SQLITE_CREATE = [
    f"""INSERT INTO {SEARCH_TABLE} (rowid, job_id, body)
        SELECT a.id, a.job_id, {attempt_document("j", "a")}
        FROM {ATTEMPT_TABLE} a JOIN {JOB_TABLE} j ON j.id = a.job_id
        WHERE {HAS_ERROR.format(row="a")}""",
    f"""CREATE TRIGGER django_retrytasks_attempt_search_insert AFTER INSERT ON {ATTEMPT_TABLE}
    WHEN {HAS_ERROR.format(row="NEW")}
    BEGIN {_SQLITE_DOCUMENT}
    END""",
    f"""CREATE TRIGGER django_retrytasks_attempt_search_update
    AFTER UPDATE OF error_type, error_message, job_id ON {ATTEMPT_TABLE}
    BEGIN
    DELETE FROM {SEARCH_TABLE} WHERE rowid = OLD.id; {_SQLITE_DOCUMENT}
    END""",
    f"""CREATE TRIGGER django_retrytasks_attempt_search_delete AFTER DELETE ON {ATTEMPT_TABLE}
    WHEN {HAS_ERROR.format(row="OLD")}
    BEGIN DELETE FROM {SEARCH_TABLE} WHERE rowid = OLD.id; END""",
]

SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS django_retrytasks_attempt_search_insert",
    "DROP TRIGGER IF EXISTS django_retrytasks_attempt_search_update",
    "DROP TRIGGER IF EXISTS django_retrytasks_attempt_search_delete",
    f"DROP TABLE IF EXISTS {SEARCH_TABLE}",
]


# --- MySQL and MariaDB -------------------------------------------------------------------------
# No trigram index there (MariaDB's full-text search finds whole words only): the narrow table
# of PostgreSQL, its documents stored lowered, read through without the attempts' tracebacks.

_MYSQL_DOCUMENT = f"""
        INSERT INTO {SEARCH_TABLE} (attempt_id, job_id, body)
            SELECT NEW.id, NEW.job_id, {attempt_document("j", "NEW", "mysql")}
            FROM {JOB_TABLE} j WHERE j.id = NEW.job_id;"""

MYSQL_CREATE = [
    f"""CREATE TABLE {SEARCH_TABLE} (
        attempt_id bigint NOT NULL PRIMARY KEY,
        job_id bigint NOT NULL,
        body text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
        KEY {SEARCH_TABLE}_job (job_id)
    )""",
    f"""INSERT INTO {SEARCH_TABLE} (attempt_id, job_id, body)
        SELECT a.id, a.job_id, {attempt_document("j", "a", "mysql")}
        FROM {ATTEMPT_TABLE} a JOIN {JOB_TABLE} j ON j.id = a.job_id
        WHERE {HAS_ERROR.format(row="a")}""",
    f"""CREATE TRIGGER django_retrytasks_attempt_search_insert AFTER INSERT ON {ATTEMPT_TABLE}
    FOR EACH ROW BEGIN
        IF {HAS_ERROR.format(row="NEW")} THEN {_MYSQL_DOCUMENT}
        END IF;
    END""",
    f"""CREATE TRIGGER django_retrytasks_attempt_search_update AFTER UPDATE ON {ATTEMPT_TABLE}
    FOR EACH ROW BEGIN
        DELETE FROM {SEARCH_TABLE} WHERE attempt_id = OLD.id;
        IF {HAS_ERROR.format(row="NEW")} THEN {_MYSQL_DOCUMENT}
        END IF;
    END""",
    f"""CREATE TRIGGER django_retrytasks_attempt_search_delete AFTER DELETE ON {ATTEMPT_TABLE}
    FOR EACH ROW DELETE FROM {SEARCH_TABLE} WHERE attempt_id = OLD.id""",
]

MYSQL_DROP = [
    *(SQLITE_DROP[:3]),
    f"DROP TABLE IF EXISTS {SEARCH_TABLE}",
]


def install(apps: Any, schema_editor: Any) -> None:
    """Create the index on the migrated database (a ``RunPython`` forwards function)."""
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        # No parameters: the PL/pgSQL holds % signs that are not placeholders.
        for script in (POSTGRES_EXTENSION, POSTGRES_CREATE, POSTGRES_INDEXES):
            schema_editor.execute(script, params=None)
    elif connection.vendor == "sqlite":
        try:
            # A savepoint: a SQLite without FTS5 refuses the table, and the migration goes on.
            with transaction.atomic(using=connection.alias):
                schema_editor.execute(SQLITE_CREATE_TABLE)
        except DatabaseError as error:  # no fts5 module, or no trigram tokenizer (< 3.34)
            logger.warning("SQLite has no FTS5 trigram tables (%s): the admin search scans", error)
            return
        for statement in SQLITE_CREATE:
            schema_editor.execute(statement)
    elif connection.vendor == "mysql":
        for statement in MYSQL_CREATE:
            schema_editor.execute(statement, params=None)


def remove(apps: Any, schema_editor: Any) -> None:
    """Drop the index (a ``RunPython`` backwards function)."""
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_DROP, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)
    elif vendor == "mysql":
        for statement in MYSQL_DROP:
            schema_editor.execute(statement)


def has_attempt_index(connection: Any) -> bool:
    """Whether the attempts' documents are in a table of their own on ``connection``."""
    if connection.vendor in ("postgresql", "mysql"):
        return True  # the migration always creates the table (its trigram index may be absent)
    if connection.vendor != "sqlite":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE name = %s", [SEARCH_TABLE])
        return cursor.fetchone() is not None
