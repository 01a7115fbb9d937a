"""The Dagster instance on PostgreSQL (deploy/postgres/dagster.yaml): `scripts/ensure_postgres.sh` brings up a
local server on 127.0.0.1, each test session gets a fresh database (dropped at the end), `mmp ingest` runs a
batch of real media through Dagster with that instance, and the run, its materializations and its blocking
asset checks are then read straight from PostgreSQL's `runs` and `event_logs` tables."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mm_platform.catalog import open_lake
from tests.postgres import PgDatabase
from tests.services import installed_command

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parent.parent
SAMPLE = ["images/orange.jpg", "documents/crazyones.pdf", "malformed/empty.jpg"]
STAGED = {"raw_media", "media_metadata", "derived_media", "embeddings"}


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
    earlier_runs = _run_ids(pg_database)  # the session's database may hold other tests' runs
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
    assert open_lake(str(lake)).snapshot().seq == 1

    with pg_database.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, status FROM runs WHERE run_id <> ALL(%s)", (sorted(earlier_runs),))
        assert cur.fetchall() == [(batch["run_id"], "SUCCESS")]  # one run, and only one
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


def _run_ids(database: PgDatabase) -> set[str]:
    """The runs the instance's `runs` table holds now (none before Dagster first creates its schema)."""
    with database.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('runs') IS NOT NULL")
        row = cur.fetchone()
        if not (row and row[0]):
            return set()
        cur.execute("SELECT run_id FROM runs")
        ids = {run_id for (run_id,) in cur.fetchall()}
    conn.close()
    return ids
