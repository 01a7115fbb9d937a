"""Shared fixtures: real local services (an S3 API on 127.0.0.1) and paths to the shared test media."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.postgres import PgDatabase, local_server
from tests.services import S3Endpoint, moto_s3_server, seaweedfs_s3_server

if TYPE_CHECKING:
    import dagster as dg

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_MEDIA = Path(os.environ.get("MMP_SHARED_MEDIA", REPO_ROOT.parent / "shared" / "media"))
ARTIFACTS = REPO_ROOT / ".test-artifacts"


def pytest_configure(config: pytest.Config) -> None:
    """One ONNX export cache per test session (``MM_CACHE_DIR``): each model is exported once per session,
    never read from (or written to) the user's own cache. Set here, before any test or worker process starts,
    so probe workers and Dagster subprocesses inherit it."""
    if "MM_CACHE_DIR" not in os.environ or os.environ.get("MM_TEST_KEEP_CACHE") != "1":
        import tempfile

        os.environ["MM_CACHE_DIR"] = tempfile.mkdtemp(prefix="mmp-test-cache-")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per usable core (container-aware), but at most one per 3 GiB of memory (a
    worker's tests hold models and lakes and start probe workers of their own) and at most 8.
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` overrides it, as in pytest-xdist."""
    from mm_platform.machine import usable_cpus

    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "").isdigit():
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    memory_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    return max(1, min(usable_cpus(), int(memory_gib // 3), 8))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the slowest files first: the suite runs on every core (pytest-xdist, one file per worker at a time),
    and a long file that starts last leaves the other workers idle at the end. A file whose module is marked
    ``slow`` goes first, then files by how many ``slow`` tests they hold; collection order otherwise."""

    def module_is_slow(item: pytest.Item) -> bool:
        marks = getattr(getattr(item, "module", None), "pytestmark", [])
        return any(mark.name == "slow" for mark in (marks if isinstance(marks, list) else [marks]))

    slow_tests: dict[Path, int] = {}
    for item in items:
        slow_tests[item.path] = slow_tests.get(item.path, 0) + int(item.get_closest_marker("slow") is not None)
    weight = {id(item): (-int(module_is_slow(item)), -slow_tests[item.path]) for item in items}
    items.sort(key=lambda item: weight[id(item)])  # stable: collection order within a file and among equals


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """A real S3 API (moto_server) on 127.0.0.1 for the whole session."""
    with moto_s3_server(tmp_path_factory.mktemp("moto")) as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def seaweedfs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """A second S3 implementation, a real object store (SeaweedFS), on 127.0.0.1 for the whole session."""
    with seaweedfs_s3_server(tmp_path_factory.mktemp("seaweedfs")) as endpoint:
        yield endpoint


def lake_location(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> tuple[str, dict[str, str]]:
    """A fresh lake location on ``local``, ``s3`` (moto) or ``seaweedfs``: (uri, environment)."""
    if backend == "local":
        return str(tmp_path / "lake"), dict(os.environ)
    endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint" if backend == "s3" else "seaweedfs_endpoint")
    bucket = endpoint.create_bucket(f"lake-{uuid.uuid4().hex[:12]}")
    return f"s3://{bucket}/lake", {**os.environ, **endpoint.env()}


@pytest.fixture(params=["local", "s3"])
def lake_env(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A fresh lake location, once on a local folder and once on the S3 API: (uri, environment)."""
    return lake_location(request, tmp_path, request.param)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[PgDatabase]:
    """A fresh database `mmp_test_<random>` for this session on the local server; dropped afterwards."""
    import psycopg2

    server = local_server()
    setup = subprocess.run(
        [str(REPO_ROOT / "scripts" / "ensure_postgres.sh")],
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


@pytest.fixture(scope="session", autouse=True)
def no_developer_dagster_home() -> Iterator[None]:
    """`make test` exports DAGSTER_HOME=.dagster_home (the developer's instance); tests that need an instance
    make their own, and CLI publishes (which report to DAGSTER_HOME) must not write into the developer's."""
    saved = os.environ.pop("DAGSTER_HOME", None)
    yield
    if saved is not None:
        os.environ["DAGSTER_HOME"] = saved


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A real Dagster instance (SQLite storage) of the test's own, for in-process runs and sensor ticks."""
    import dagster as dg  # noqa: F811  (imported here: most tests need no Dagster)

    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as inst:
        yield inst


@pytest.fixture(scope="session")
def shared_media() -> Path:
    if not SHARED_MEDIA.is_dir():
        pytest.fail(f"shared test media not found at {SHARED_MEDIA}; set MMP_SHARED_MEDIA")
    return SHARED_MEDIA


def _lakes_under(root: Path) -> list[Path]:
    logs = root.rglob("_publish_log/_delta_log")
    return [log.parent.parent for log in logs if "_branches" not in log.parts]  # a branch's log is not a lake


@pytest.fixture(autouse=True)
def active_model_invariant(tmp_path: Path) -> Iterator[None]:
    """After every test, in every lake it left: for the active model of each modality, every active media
    item of that modality has exactly one vector whose content hash matches its media row."""
    yield
    from mm_platform.catalog import open_lake
    from mm_platform.quality.invariants import model_coverage
    from mm_platform.reprocess import active_models

    for root in _lakes_under(tmp_path):
        snapshot = open_lake(str(root), create=False).snapshot()
        for role, model in active_models(snapshot).items():
            if model is not None:
                coverage = model_coverage(snapshot, role, model)
                assert coverage.passed, f"invariant broken in {root}: {coverage.detail}"


@pytest.fixture(scope="session")
def media_lake(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """One lake of real media ingested through the real models (tests/annotation_lake.py), built once per session
    for the annotation, annotation-crash and branch tests: (media folder, lake folder). Tests change a private
    copy (``copy_lake``), never this lake; that it is left as built is checked at the end of the session."""
    from tests.annotation_lake import build_media_lake, lake_files

    media, lake = build_media_lake(shared_media, tmp_path_factory.mktemp("media-lake"))
    built = lake_files(lake)
    yield media, lake
    assert lake_files(lake) == built, "a test changed the shared media lake instead of its own copy"


@pytest.fixture(scope="session")
def browser_lake(shared_media: Path, tmp_path_factory: pytest.TempPathFactory) -> object:
    """One small ingested lake for the lake-browser and first-hour tests (tests/browser_lake.py)."""
    from tests.browser_lake import build_browser_lake

    return build_browser_lake(shared_media, tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="session")
def served(browser_lake: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """`mmp serve` over ``browser_lake`` on 127.0.0.1 (with a token), for the whole session."""
    from tests.browser_lake import BrowserLake, serve

    assert isinstance(browser_lake, BrowserLake)
    with serve(browser_lake.root, tmp_path_factory.mktemp("serve") / "serve.log") as running:
        yield running
