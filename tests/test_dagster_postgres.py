"""The Dagster instance on PostgreSQL (deploy/postgres/dagster.yaml): `scripts/ensure_postgres.sh` brings up a
local server on 127.0.0.1, each test session gets a fresh database (dropped at the end), `mmp ingest` runs a
batch of real media through Dagster with that instance, and the run, its materializations and its blocking
asset checks are then read straight from PostgreSQL's `runs` and `event_logs` tables."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mm_platform.lake import Lake
from tests.services import installed_command

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parent.parent
SAMPLE = ["images/orange.jpg", "documents/crazyones.pdf", "malformed/empty.jpg"]
STAGED = {"raw_media", "media_metadata", "derived_media", "embeddings"}


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


def _server() -> PgDatabase:
    """The server and role ensure_postgres.sh sets up (overridable by the same DAGSTER_PG_* variables)."""
    return PgDatabase(
        host=os.environ.get("DAGSTER_PG_HOST", "127.0.0.1"),
        port=int(os.environ.get("DAGSTER_PG_PORT", "5432")),
        user=os.environ.get("DAGSTER_PG_USERNAME", "mmp"),
        password=os.environ.get("DAGSTER_PG_PASSWORD", "mmp"),
        name=os.environ.get("DAGSTER_PG_DB", "mmp_dagster"),
    )


@pytest.fixture(scope="session")
def pg_database() -> Iterator[PgDatabase]:
    """A fresh database `mmp_test_<random>` for this session on the local server; dropped afterwards."""
    import psycopg2

    server = _server()
    setup = subprocess.run(
        [str(REPO / "scripts" / "ensure_postgres.sh")],
        env={**os.environ, **server.env()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert setup.returncode == 0, f"ensure_postgres.sh failed:\n{setup.stdout}\n{setup.stderr}"
    try:
        admin = server.connect()
    except psycopg2.OperationalError as exc:
        if os.geteuid() != 0:
            pytest.skip(f"not root and no PostgreSQL reachable at {server.host}:{server.port}: {exc}")
        raise
    admin.autocommit = True
    database = PgDatabase(server.host, server.port, server.user, server.password, f"mmp_test_{uuid.uuid4().hex[:12]}")
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {database.name} OWNER {server.user}")
    try:
        yield database
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {database.name} WITH (FORCE)")
        admin.close()


@pytest.fixture
def pg_dagster_home(pg_database: PgDatabase, tmp_path: Path) -> Path:
    """A DAGSTER_HOME holding the PostgreSQL instance settings, as deploy/postgres/README.md describes."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "postgres" / "dagster.yaml", home / "dagster.yaml")
    return home


@pytest.fixture
def media_folder(shared_media: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    for name in SAMPLE:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_media / name, folder / name)
    return folder


def test_mmp_ingest_records_runs_and_checks_in_postgres(
    pg_database: PgDatabase, pg_dagster_home: Path, media_folder: Path, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    env = {
        **os.environ,
        **pg_database.env(),
        "DAGSTER_HOME": str(pg_dagster_home),
        "MM_LAKE": str(lake),
        "GX_ANALYTICS_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    run = subprocess.run(
        [installed_command("mmp"), "--lake", str(lake), "ingest", str(media_folder), "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"mmp ingest failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    summary = json.loads(run.stdout)
    [batch] = summary["batches"]
    assert batch["success"] and batch["publish_seq"] == 1
    assert Lake.open(str(lake)).snapshot().seq == 1

    with pg_database.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, status FROM runs")
        assert cur.fetchall() == [(batch["run_id"], "SUCCESS")]
        cur.execute(
            "SELECT dagster_event_type, asset_key, partition, event FROM event_logs WHERE run_id = %s",
            (batch["run_id"],),
        )
        events = cur.fetchall()
    conn.close()

    materialized = {"/".join(json.loads(key)) for kind, key, _, _ in events if kind == "ASSET_MATERIALIZATION"}
    assert materialized == {*STAGED, "published_snapshot"}
    assert {p for kind, _, p, _ in events if kind == "ASSET_MATERIALIZATION"} == {batch["batch"]}
    # A check evaluation leaves the asset_key column empty: its asset, name and outcome are in the event itself.
    checks = [
        json.loads(event)["dagster_event"]["event_specific_data"]
        for kind, _, _, event in events
        if kind == "ASSET_CHECK_EVALUATION"
    ]
    assert {"/".join(c["asset_key"]["path"]) for c in checks} == STAGED
    assert "gx_media" in {c["check_name"] for c in checks if c["asset_key"]["path"] == ["raw_media"]}
    assert all(c["blocking"] and c["success"] for c in checks), [c["check_name"] for c in checks if not c["success"]]
