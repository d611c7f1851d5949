"""Periodic schedules: a row per schedule declared in code (paused or not, its last tick and
job) and the ticks deferred, one row per (schedule, tick) by a unique constraint, which is what
keeps it to one job per tick however many workers defer. Plain tables and unique constraints
on columns, the same on every database; on MySQL and MariaDB a schedule's names compare byte
for byte, as elsewhere (see ``_mysql.py``)."""

from __future__ import annotations

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from django_retrytasks.migrations._mysql import (
    mysql_only,
    schedule_names_backwards,
    schedule_names_forwards,
)


class Migration(migrations.Migration):
    dependencies = [
        ("django_retrytasks", "0008_admin_search"),
    ]

    operations = [
        migrations.CreateModel(
            name="Schedule",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("task_name", models.CharField(max_length=255)),
                ("periodic_id", models.CharField(blank=True, default="", max_length=128)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("active_since", models.DateTimeField(default=django.utils.timezone.now)),
                ("paused_at", models.DateTimeField(blank=True, null=True)),
                ("last_tick", models.BigIntegerField(blank=True, null=True)),
                ("last_deferred_at", models.DateTimeField(blank=True, null=True)),
                (
                    "last_job",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="django_retrytasks.job",
                    ),
                ),
            ],
            options={
                "ordering": ["task_name", "periodic_id"],
                "permissions": [
                    ("pause_schedule", "Can pause and resume schedules"),
                    ("run_schedule", "Can run schedules now"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("task_name", "periodic_id"), name="retrytasks_one_row_per_schedule"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="ScheduleTick",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("tick", models.BigIntegerField()),
                ("deferred_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "schedule",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="ticks",
                        to="django_retrytasks.schedule",
                    ),
                ),
            ],
            options={
                "ordering": ["schedule_id", "tick"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("schedule", "tick"), name="retrytasks_one_job_per_tick"
                    )
                ],
            },
        ),
        mysql_only(schedule_names_forwards, schedule_names_backwards),
    ]
