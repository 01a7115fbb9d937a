"""Workers forked from the fork server do not run the parent's main module again (``mm_platform.forkserver``),
unless they need something defined there.

Each case runs a real program in its own interpreter, as a user's script (by path) or module (``-m``)
would: its top level appends a line to a log every time it executes, then (in its main block) probes real
images on a pool of two workers and replaces one. So far the log must hold one line: multiprocessing would
otherwise re-run the program in every worker it starts (3 lines here, and 0.4 s of a core per worker under
the ``mmp`` script). Then the program runs functions of its own in workers from the same server (a probe
pool, and a plain ``multiprocessing`` pool of its own): those work as before, and only those workers run
the program again.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROGRAM = textwrap.dedent(
    """
    import os, sys
    with open(os.environ["RUNS_LOG"], "a") as log:
        log.write(__name__ + "\\n")

    def defined_here(data, name):
        return len(bytes(data))

    def square(x):
        return x * x

    if __name__ == "__main__":
        from pathlib import Path
        from mm_platform.media import MediaRejected, ProbePool
        images = sorted(Path(sys.argv[1]).glob("*.jpg"))[:4]
        with ProbePool(workers=2, timeout_s=60) as pool:
            outcomes = [o for _, o in pool.map([(p.name, p.read_bytes()) for p in images])]
            pool._workers[0].kill()  # a replaced worker starts from the server again
            outcomes += [o for _, o in pool.map([(p.name, p.read_bytes()) for p in images])]
        assert len(outcomes) == 8 and not any(isinstance(o, MediaRejected) for o in outcomes), outcomes
        print("probed", len(outcomes), "runs so far", len(open(os.environ["RUNS_LOG"]).readlines()), flush=True)
        with ProbePool(workers=1, timeout_s=60, probe_fn=defined_here) as own:
            try:
                print("own probe", own.probe(b"abc", "x.bin"), flush=True)
            except MediaRejected as exc:  # a package's __main__ cannot be loaded by workers (as without us)
                print("own probe refused by its worker", flush=True)
                sys.exit(0)
        import multiprocessing
        with multiprocessing.get_context("forkserver").Pool(2) as plain:
            print("own pool", plain.map(square, range(4)), flush=True)
    """
)


@pytest.mark.parametrize("how", ["path", "module"])
def test_workers_do_not_rerun_the_parents_main_module(shared_media: Path, tmp_path: Path, how: str) -> None:
    (tmp_path / "user_program.py").write_text(PROGRAM)
    runs_log = tmp_path / "runs.log"
    target = [str(tmp_path / "user_program.py")] if how == "path" else ["-m", "user_program"]
    out = _run(target, shared_media, tmp_path, runs_log)
    lines = out.stdout.splitlines()
    assert lines == ["probed 8 runs so far 1", "own probe 3", "own pool [0, 1, 4, 9]"], out.stdout
    runs = runs_log.read_text().splitlines()
    # the program itself, then once in each worker that ran one of its functions (1 probe + 1 or 2 pool)
    assert runs[0] == "__main__" and set(runs[1:]) == {"__mp_main__"} and 2 <= len(runs) - 1 <= 3, runs


def test_a_packages_main_is_never_run_again_not_even_for_a_function_of_its_own(
    shared_media: Path, tmp_path: Path
) -> None:
    """``python -m pkg`` runs ``pkg/__main__.py``, which multiprocessing never re-runs in a worker (it would
    start the program over): the stand-in must not either, so the worker cannot load the function."""
    (tmp_path / "user_pkg").mkdir()
    (tmp_path / "user_pkg" / "__init__.py").write_text("")
    (tmp_path / "user_pkg" / "__main__.py").write_text(PROGRAM)
    runs_log = tmp_path / "runs.log"
    out = _run(["-m", "user_pkg"], shared_media, tmp_path, runs_log)
    assert out.stdout.splitlines() == ["probed 8 runs so far 1", "own probe refused by its worker"], out.stdout
    assert runs_log.read_text().splitlines() == ["__main__"]


def _run(target: list[str], shared_media: Path, cwd: Path, runs_log: Path) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        [sys.executable, *target, str(shared_media / "images")],
        cwd=cwd,
        env={"RUNS_LOG": str(runs_log), "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out


def pillow_formats_known(data: object, name: str) -> int:
    """A probe that reports how many image formats Pillow has loaded in its worker (before any decode)."""
    from PIL import Image

    return len(Image.ID)


def test_probe_workers_start_with_the_decoders_set_up(tmp_path: Path) -> None:
    """Pillow loads its format plugins on first use (~45 ms of a core): the fork server does that once
    (``mm_platform.media.warm``), so a fresh worker's first file does not wait for it."""
    program = textwrap.dedent(
        """
        from PIL import Image
        from mm_platform.ingest.process import start_probe_server
        from mm_platform.media import ProbePool
        from tests.test_forkserver import pillow_formats_known
        start_probe_server()
        with ProbePool(workers=1, timeout_s=60, probe_fn=pillow_formats_known) as pool:
            in_worker = pool.probe(b"abc", "x.bin")
        Image.init()
        print(in_worker, len(Image.ID))
        """
    )
    (tmp_path / "fresh_worker.py").write_text(program)
    out = subprocess.run(
        [sys.executable, str(tmp_path / "fresh_worker.py")],
        cwd=tmp_path,
        env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    in_worker, everything = out.stdout.split()
    assert int(everything) > 30 and in_worker == everything, out.stdout
