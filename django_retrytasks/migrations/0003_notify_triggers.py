"""NOTIFY triggers on PostgreSQL (see django_retrytasks.notify); nothing on other databases."""

from __future__ import annotations

from django.db import migrations

from django_retrytasks import notify


class Migration(migrations.Migration):
    dependencies = [("django_retrytasks", "0002_attempt_outcome_snoozed")]

    operations = [
        migrations.RunPython(notify.install_triggers, notify.remove_triggers, elidable=False),
    ]
