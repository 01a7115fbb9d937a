"""The local PostgreSQL server the Dagster-instance tests use (``scripts/ensure_postgres.sh`` starts it), and a
database on it; the session's ``pg_database`` fixture (conftest.py) makes a fresh one and drops it after."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class PgDatabase:
    """A database on the local server, with the variables deploy/postgres/dagster.yaml reads."""

    host: str
    port: int
    user: str
    password: str
    name: str

    def env(self) -> dict[str, str]:
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.name,
        }

    def connect(self, dbname: str | None = None):  # type: ignore[no-untyped-def]
        import psycopg2

        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname or self.name,
            connect_timeout=5,
        )


def local_server() -> PgDatabase:
    """The server and role ensure_postgres.sh sets up (overridable by the same DAGSTER_PG_* variables)."""
    return PgDatabase(
        host=os.environ.get("DAGSTER_PG_HOST", "127.0.0.1"),
        port=int(os.environ.get("DAGSTER_PG_PORT", "5432")),
        user=os.environ.get("DAGSTER_PG_USERNAME", "mmp"),
        password=os.environ.get("DAGSTER_PG_PASSWORD", "mmp"),
        name=os.environ.get("DAGSTER_PG_DB", "mmp_dagster"),
    )
