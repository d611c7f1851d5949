"""Mark jobs claimed ahead of a free runner, so that recovery knows they may not have started."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("django_retrytasks", "0004_lock_is_free_function")]

    operations = [
        migrations.AddField(
            model_name="job",
            name="claimed_ahead",
            field=models.BooleanField(default=False),
        ),
    ]
