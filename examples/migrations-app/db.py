"""The database both colours share, and what its schema is compared with this release's code.

``DATABASE_URL`` (a SQLAlchemy URL, from bgci's ``platform.env``) names it; both colours and the
migration hook get the same one. For a SQLite file (``~`` is the home directory) its directory is
made on first use.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, make_url

HERE = Path(__file__).resolve().parent


def database_url() -> str:
    """``DATABASE_URL``; a SQLite file's ``~`` expanded (each colour runs in its own release's
    directory: a relative path would give each release a database of its own)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        raise RuntimeError("DATABASE_URL is not set: bgci.toml's platform.env gives it to the app")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database).expanduser()
        if not path.is_absolute():
            raise RuntimeError(f"DATABASE_URL names the SQLite file {parsed.database!r}: use an "
                               "absolute path (or ~/...), which both colours and the hook share")
        path.parent.mkdir(parents=True, exist_ok=True)
        url = parsed.set(database=str(path)).render_as_string(hide_password=False)
    return url


@lru_cache(maxsize=1)
def engine() -> Engine:
    # SQLite: wait up to 10 s for the other colour's (or the migration's) write lock
    return create_engine(database_url(), connect_args={"timeout": 10}
                         if database_url().startswith("sqlite") else {})


def schema_state() -> dict[str, str | None]:
    """This release's newest migration (``code``), the database's (``database``) and ``state``:
    ``current`` (equal), ``behind`` (the database lacks this release's migrations) or ``ahead``
    (the database was migrated by a newer release, whose migrations this code does not know)."""
    script = ScriptDirectory.from_config(Config(str(HERE / "alembic.ini")))
    head = script.get_current_head()
    with engine().connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    known = {rev.revision for rev in script.walk_revisions()}
    if current == head:
        state = "current"
    elif current is None or current in known:
        state = "behind"
    else:
        state = "ahead"
    return {"code": head, "database": current, "state": state}
