"""The package as a user installs it: a wheel built from the sources (``pip install .``, not editable) into a
fresh virtual environment, then ``mmp ingest DIR`` run from an unrelated folder publishes: the code location,
the Dagster instance defaults and the templates travel in the wheel, nothing is read from the project folder.

The dependencies are large, so the fresh environment reuses this one's through a ``.pth`` file (after its own
site-packages, so the installed ``mm_platform`` wins) instead of downloading them again; nothing is fetched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MEDIA = ["images/apple.jpg", "images/butterfly.jpg"]


def _run(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    return result


def _wheel(tmp_path: Path, env: dict[str, str]) -> Path:
    """A wheel built offline from a copy of what the sdist holds (the project folder stays untouched)."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "mm_platform", source / "mm_platform", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    wheels = tmp_path / "wheels"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(wheels),
            str(source),
        ],
        cwd=tmp_path,
        env=env,
    )
    (wheel,) = wheels.glob("mm_platform-*.whl")
    return wheel


def _install(tmp_path: Path, wheel: Path, env: dict[str, str]) -> Path:
    """A fresh venv holding the wheel; then this environment's dependencies behind it. The ``.pth`` comes after
    the install, so pip sees an empty environment (not the editable ``mm_platform`` of this one)."""
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path, env=env)
    python = venv / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        cwd=tmp_path,
        env=env,
    )
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # A path in a .pth is appended to sys.path, after the venv's own site-packages; the .pth files in that path
    # (the editable install's finder) are not run.
    (purelib / "_mmp_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


@pytest.mark.slow
def test_pip_install_then_mmp_ingest_from_any_folder(shared_media: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MM_", "DAGSTER_")) and k != "PYTHONPATH"}
    env |= {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    wheel = _wheel(tmp_path, env)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "mm_platform/orchestration/dagster.yaml" in names
    assert "mm_platform/serve/templates/base.html" in names
    assert not any(n.startswith(("assets/", "sensors/", "tests/")) for n in names)  # only the package ships

    venv = _install(tmp_path, wheel, env)
    python = venv / "bin" / "python"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run([str(python), "-c", "import mm_platform; print(mm_platform.__file__)"], cwd=elsewhere, env=env)
    assert where.stdout.strip().startswith(str(venv))  # the installed copy, not the project folder

    media = tmp_path / "media"
    for name in MEDIA:
        (media / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared_media / name, media / name)
    env |= {"DAGSTER_HOME": str(tmp_path / "dagster_home")}
    mmp = str(venv / "bin" / "mmp")
    lake = tmp_path / "lake"
    ingest = _run([mmp, "--lake", str(lake), "ingest", str(media), "--json"], cwd=elsewhere, env=env)
    ingested = json.loads(ingest.stdout)
    assert [b["success"] for b in ingested["batches"]] == [True]
    status = json.loads(_run([mmp, "--lake", str(lake), "status", "--json"], cwd=elsewhere, env=env).stdout)
    assert status["snapshot"]["seq"] == ingested["batches"][0]["publish_seq"]
    assert status["rows"]["media"] == len(MEDIA)
    # A new instance gets the project's settings from the package (no dagster.yaml in the folder it ran from).
    assert (tmp_path / "dagster_home" / "dagster.yaml").read_text() == (REPO / "dagster.yaml").read_text()
    assert not (elsewhere / "lake").exists() and not list(elsewhere.iterdir())


def test_the_packaged_instance_settings_are_the_projects() -> None:
    """``mm_platform/orchestration/dagster.yaml`` is what a new instance gets outside the project folder."""
    packaged = REPO / "mm_platform" / "orchestration" / "dagster.yaml"
    assert packaged.read_text() == (REPO / "dagster.yaml").read_text()


def test_mmp_ingest_leaves_the_environment_alone(shared_media: Path, tmp_path: Path) -> None:
    """The lake, branch and audit fields reach the runs as run config and tags, not through ``os.environ``."""
    from click.testing import CliRunner

    from mm_platform.cli import main

    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(shared_media / MEDIA[0], media / "one.jpg")
    before = dict(os.environ)
    args = ["--lake", str(tmp_path / "lake"), "--actor", "ada", "-m", "why", "ingest", str(media), "--plan-only"]
    result = CliRunner().invoke(main, args, env={"DAGSTER_HOME": str(tmp_path / "home")}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "1 object(s)" in result.output
    after = dict(os.environ)
    assert after == before
