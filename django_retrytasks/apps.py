from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class RetryTasksConfig(AppConfig):
    name = "django_retrytasks"
    label = "django_retrytasks"
    verbose_name = "Retry tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Import every installed app's tasks.py so the worker and the admin know its tasks.
        autodiscover_modules("tasks")
