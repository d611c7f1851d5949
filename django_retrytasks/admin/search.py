"""The job list's search: a few short words, found through each database's text index.

``#42`` is job 42. Other words are looked for, ignoring case, in a job's documents (see
:mod:`django_retrytasks.search_index`): the job itself (task name, lock, queueing lock) and
each attempt that recorded an error (task name, error type, the start of the message). A job
matches when one of its documents holds every word; a search that is one number also finds the
job of that id. At most :data:`~django_retrytasks.limits.MAX_SEARCH_WORDS` words of at most
:data:`~django_retrytasks.limits.MAX_SEARCH_WORD_LENGTH` characters: anything more is refused
with a message, before any query.

Two ways to run it, chosen by a capped count through the index: words found in fewer than
:data:`COMMON` documents are looked up in the index and matched by id (fast however many jobs
there are); commoner words are checked row by row on the newest jobs, which meets the page's
50 matches (and the count's cap) long before the end of the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL

from django_retrytasks import limits, search_index
from django_retrytasks.models import Job

#: Index matches from which words count as common (checked row by row, newest jobs first).
COMMON = 5000
#: A searched list counts its matches up to this many: beyond, it pages through the newest.
COUNT_CAP = 1000
_MAX_ID = 2**63 - 1


class SearchRefused(ValueError):
    """A search the list will not run; the message says why, in the user's words."""


@dataclass(frozen=True)
class Search:
    """A parsed search: job ids, and words that one document of the job must all hold."""

    job_ids: tuple[int, ...] = ()
    words: tuple[str, ...] = ()
    #: The whole search is this one number: the job of that id matches too.
    number: int | None = None


def parse(term: str) -> Search:
    """The :class:`Search` that ``term`` asks for, or :class:`SearchRefused` saying why not."""
    words = term.split()
    if len(words) > limits.MAX_SEARCH_WORDS:
        raise SearchRefused(
            f"Search refused: at most {limits.MAX_SEARCH_WORDS} words, this one has "
            f"{len(words):,}. Use fewer words, or the filters on the right."
        )
    job_ids: list[int] = []
    text: list[str] = []
    for word in words:
        shown = limits.cut_text(word, 40)
        if len(word) > limits.MAX_SEARCH_WORD_LENGTH:
            raise SearchRefused(
                f"Search refused: a word has at most {limits.MAX_SEARCH_WORD_LENGTH} characters, "
                f"{shown!r} has {len(word):,}."
            )
        problem = limits.text_problem(word)
        if problem is not None:
            raise SearchRefused(f"Search refused: the word {shown!r} {problem}.")
        digits = word.removeprefix("#")
        if digits.isascii() and digits.isdigit() and (word.startswith("#") or len(word) < 3):
            job_ids.append(min(int(digits), _MAX_ID))  # no job has an id past the column's
        elif len(word) < limits.MIN_SEARCH_WORD_LENGTH:
            raise SearchRefused(
                f"Search refused: {shown!r} is too short; a word has at least "
                f"{limits.MIN_SEARCH_WORD_LENGTH} characters (#42 finds job 42)."
            )
        else:
            text.append(word)
    number = None
    if len(words) == 1 and text and text[0].isascii() and text[0].isdigit():
        number = min(int(text[0]), _MAX_ID)
    return Search(job_ids=tuple(job_ids), words=tuple(text), number=number)


def _like_pattern(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_query(words: tuple[str, ...]) -> str:
    """An FTS5 query of every word as a quoted string: each one a substring, ANDed."""
    return " AND ".join('"' + word.replace('"', '""') + '"' for word in words)


class _Sql:
    """The SQL of one search on one database."""

    def __init__(self, words: tuple[str, ...], vendor: str) -> None:
        self.words = words
        self.vendor = vendor
        self.postgres = vendor == "postgresql"
        # PostgreSQL's ILIKE escapes with a backslash by default; SQLite's LIKE ignores
        # ASCII case by default and needs its escape character named; MySQL's escapes with a
        # backslash by default and compares lowered documents with lowered words.
        if vendor == "mysql":
            self.like = "LIKE %s"
            words = tuple(word.lower() for word in words)
        else:
            self.like = "ILIKE %s" if self.postgres else "LIKE %s ESCAPE '\\'"
        self.patterns = [_like_pattern(word) for word in words]

    def job_document(self, table: str = search_index.JOB_TABLE) -> str:
        return search_index.job_document(table, self.vendor)

    def every_word(self, document: str) -> tuple[str, list[str]]:
        return " AND ".join(f"{document} {self.like}" for _ in self.words), list(self.patterns)

    def index_lookup(self) -> tuple[str, list[str]]:
        """Attempt documents holding every word, through the index: SQL giving job ids."""
        table = search_index.SEARCH_TABLE
        if self.postgres or self.vendor == "mysql":
            body, params = self.every_word("body")
            return f"SELECT job_id FROM {table} WHERE {body}", params
        return f"SELECT job_id FROM {table} WHERE {table} MATCH %s", [_fts_query(self.words)]

    def matches_in_index(self, cursor: Any) -> int:
        """Documents holding every word, counted through the index up to :data:`COMMON`."""
        lookup, params = self.index_lookup()
        sql = f"SELECT COUNT(*) FROM ({lookup} LIMIT {COMMON}) found"
        if self.postgres:  # the jobs' documents have a table and a trigram index too
            jobs, job_params = self.every_word("body")
            sql += (
                f" UNION ALL SELECT COUNT(*) FROM (SELECT 1 FROM {search_index.JOB_SEARCH_TABLE} "
                f"WHERE {jobs} LIMIT {COMMON}) found"
            )
            params += job_params
        cursor.execute(sql, params)
        return sum(row[0] for row in cursor.fetchall())

    def by_index(self, number: int | None) -> Q:
        """Rare words: the matching jobs' ids, looked up once, then the jobs by id (and the
        job ``number``, when the search is one number)."""
        lookup, params = self.index_lookup()
        if self.postgres:
            jobs, job_params = self.every_word("body")
            union = (
                f"SELECT job_id FROM {search_index.JOB_SEARCH_TABLE} WHERE {jobs} UNION {lookup}"
            )
            if number is not None:  # in the union: an OR beside it made PostgreSQL scan all
                union += f" UNION SELECT {int(number)}"
            return Q(pk__in=RawSQL(union, [*job_params, *params]))
        # SQLite and MySQL: no index over the jobs' documents, checked on the rows as they
        # are read.
        jobs, job_params = self.every_word(self.job_document())
        found = Q(RawSQL(jobs, job_params, output_field=BooleanField())) | Q(
            pk__in=RawSQL(lookup, params)
        )
        return found if number is None else found | Q(pk=number)

    def row_by_row(self) -> Q:
        """Common words (or no index): each job checked as the list reads it, newest first.

        A scalar subquery, not EXISTS: PostgreSQL would turn EXISTS into a join that reads
        every match before the first row comes out.
        """
        jobs, job_params = self.every_word(self.job_document())
        attempts, attempt_params = self.every_word(
            search_index.attempt_document(search_index.JOB_TABLE, "a", self.vendor)
        )
        sql = (
            f"({jobs}) OR (SELECT 1 FROM {search_index.ATTEMPT_TABLE} a WHERE a.job_id = "
            f"{search_index.JOB_TABLE}.id AND {attempts} LIMIT 1) IS NOT NULL"
        )
        return Q(RawSQL(sql, [*job_params, *attempt_params], output_field=BooleanField()))


def apply(search: Search, queryset: QuerySet[Job]) -> QuerySet[Job]:
    """``queryset`` narrowed to the jobs ``search`` finds.

    The conditions name the job table itself: ``queryset`` must select from it unaliased, as
    the admin's list does.
    """
    for job_id in search.job_ids:
        queryset = queryset.filter(pk=job_id)
    if not search.words:
        return queryset
    connection = connections[queryset.db]
    sql = _Sql(search.words, connection.vendor)
    if search_index.has_attempt_index(connection):
        with connection.cursor() as cursor:
            common = sql.matches_in_index(cursor) >= COMMON
    else:
        common = True
    if not common:
        return queryset.filter(sql.by_index(search.number))
    found = sql.row_by_row()
    return queryset.filter(found if search.number is None else found | Q(pk=search.number))


class CappedPaginator(Paginator):
    """Counts at most :data:`COUNT_CAP` rows: a search of a common word need not count all,
    and the list pages through the newest :data:`COUNT_CAP` matches."""

    @cached_property
    def counted(self) -> int:
        rows: Any = self.object_list  # a QuerySet: counted by the database, up to the cap
        # Only the ids, in no order: neither the list's columns nor a sort are needed to count.
        return int(rows.order_by().values("pk")[: COUNT_CAP + 1].count())

    @property
    def count(self) -> int:
        return min(self.counted, COUNT_CAP)

    @property
    def capped(self) -> bool:
        return self.counted > COUNT_CAP
