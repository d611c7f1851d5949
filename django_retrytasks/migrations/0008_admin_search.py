"""The admin's search, error type filter and dashboard get indexes that fit each database.

With 100,000 jobs and 200,000 attempts, a search scanned the attempts once per word (a second
or more per word, a thousand words took minutes) and the error type filter scanned them too.
Now: an index on the attempts' error type, one that answers the dashboard's recent failures
without reading the attempts' rows (their tracebacks), and the text index of
:mod:`django_retrytasks.search_index` (trigrams: ``pg_trgm`` on PostgreSQL, an FTS5 table on
SQLite), filled here from the attempts already stored. On a large table this migration takes a
while (about 20 s for 200,000 attempts on SQLite) and holds a lock on the attempts meanwhile.
"""

from __future__ import annotations

from django.db import migrations, models

from django_retrytasks import search_index


class Migration(migrations.Migration):
    dependencies = [("django_retrytasks", "0007_job_scheduled_later")]

    operations = [
        migrations.AddIndex(
            model_name="attempt",
            index=models.Index(
                models.F("error_type"), models.F("job"), name="retrytasks_attempt_type_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="attempt",
            index=models.Index(
                models.F("finished_at"),
                models.F("outcome"),
                models.F("error_type"),
                models.F("job"),
                name="retrytasks_attempt_recent_idx",
            ),
        ),
        # Not wrapped in a transaction of its own: DDL commits at once on MySQL, which Django
        # refuses inside one (elsewhere the migration's transaction holds it all the same).
        migrations.RunPython(
            search_index.install, search_index.remove, atomic=False, elidable=False
        ),
    ]
