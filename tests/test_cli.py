"""The ``mmp`` command line over a real lake: status, snapshots, rollback, vacuum, recover, and errors
that tell the user what to do (exit code 2, no traceback)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mm_platform.catalog import open_lake
from mm_platform.cli import main
from tests.factories import partition_writes


def _mmp(lake: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--lake", str(lake), *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_status_snapshots_rollback_vacuum(tmp_path: Path) -> None:
    lake_path = tmp_path / "lake"
    lake = open_lake(str(lake_path))
    lake.publish("b1", partition_writes("b1", 5))
    lake.publish("b2", partition_writes("b2", 7))

    code, out = _mmp(lake_path, "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["snapshot"]["seq"] == 2 and status["rows"]["media"] == 12

    code, out = _mmp(lake_path, "snapshots", "--json")
    assert [s["seq"] for s in json.loads(out)] == [1, 2]

    code, out = _mmp(lake_path, "rollback", "1")
    assert code == 0 and "published snapshot 3" in out
    assert lake.snapshot().table("media").num_rows == 5

    code, out = _mmp(lake_path, "vacuum", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["dry_run"] is True

    code, out = _mmp(lake_path, "recover")
    assert code == 0 and "nothing to recover" in out


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    lake.publish("b1", partition_writes("b1", 2))
    result = CliRunner().invoke(main, ["--lake", str(tmp_path / "lake"), "rollback", "9"])
    assert result.exit_code == 2
    assert "error: no published snapshot with seq 9" in result.output
    assert "hint: published seqs run from 1 to 1" in result.output
    assert "Traceback" not in result.output

    missing = CliRunner().invoke(main, ["--lake", str(tmp_path / "nowhere"), "status"])
    assert missing.exit_code == 2 and "no lake at" in missing.output
