"""Persistence: SQLAlchemy 2 models, engine/session factories and `store` (all SQL)."""
