"""The bench: ``python -m bench`` measures the queue on SQLite and PostgreSQL (see README.md)."""
