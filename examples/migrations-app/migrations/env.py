"""Alembic's entry point: migrations run online against DATABASE_URL (see db.py)."""

from __future__ import annotations

import sys
from logging.config import fileConfig
from pathlib import Path

from alembic import context

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the app's db.py
from db import engine

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

with engine().connect() as connection:
    # one transaction per migration: a failing one leaves the schema at the one before it
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
