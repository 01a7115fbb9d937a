"""Delta tables kept open at their latest version.

Loading a Delta table replays its log from the last checkpoint; bringing an open table forward with
``update_incremental`` reads only the commits since (about 20× cheaper here), and is skipped when the next
commit file does not exist. A publish touches each table several times (stage, freshness check, base versions,
apply), so it reuses one handle per table. A handle does not follow its own commits; after one, the refresh
can run in the background (:meth:`LatestTables.refresh_later`) while the caller goes on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from mm_platform.lake.storage import LakeLocation

# delta-rs releases the GIL while it reads the log: one thread, so a refresh overlaps Python work elsewhere.
_REFRESHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmp-refresh")


class LatestTables:
    """One handle per table and thread (delta-rs handles are mutable: threads do not share them)."""

    def __init__(self, location: LakeLocation) -> None:
        self.location = location
        self._local = threading.local()

    def latest(self, name: str) -> DeltaTable:
        """Table ``name`` at its latest committed version, as of this call."""
        handles = self._settled(name)
        dt = handles.get(name)
        if dt is not None:
            if not self._newer_commit_exists(name, dt.version()):
                return dt
            try:
                dt.update_incremental()
                return dt
            except DeltaError:
                pass  # e.g. the commits it would replay were cleaned up: open it afresh
        dt = DeltaTable(self.location.uri(name), storage_options=dict(self.location.storage_options))
        handles[name] = dt
        return dt

    def _newer_commit_exists(self, name: str, version: int) -> bool:
        """Whether the table may have a version after ``version`` (then ``update_incremental`` tells).

        By the Delta protocol a newer version exists when the next commit file does: one stat or HEAD (~0.05 ms
        here, where ``update_incremental`` lists the log: ~3 ms, a dozen times per small batch). Log cleanup
        deletes old commits oldest first (``maintenance.purge_log``), so the next one missing while ours is
        still there means ours is the latest; both missing means the log was cut past us.
        """
        log = f"{name}/_delta_log"
        if self.location.exists(f"{log}/{version + 1:020d}.json"):
            return True
        return not self.location.exists(f"{log}/{version:020d}.json")

    def current(self, name: str) -> DeltaTable:
        """The handle as this thread last saw it (e.g. right after committing through it), unrefreshed."""
        handles = self._settled(name)
        return handles[name] if name in handles else self.latest(name)

    def refresh_later(self, names: Iterable[str]) -> None:
        """Bring this thread's handles of ``names`` forward in the background (after committing through them:
        a small batch's next stage would otherwise wait ~3 ms per table for it). The handle is not touched
        meanwhile: this thread's next ``latest`` or ``current`` of it waits for the refresh first."""
        handles = self._handles()
        pending: dict[str, Future[None]] = self._local.__dict__.setdefault("pending", {})
        for name in names:
            if name in handles and name not in pending:
                pending[name] = _REFRESHER.submit(handles[name].update_incremental)

    def _handles(self) -> dict[str, DeltaTable]:
        handles: dict[str, DeltaTable] = self._local.__dict__.setdefault("handles", {})
        return handles

    def _settled(self, name: str) -> dict[str, DeltaTable]:
        """This thread's handles, once a background refresh of ``name`` has ended (a failed one drops it)."""
        handles = self._handles()
        refresh = self._local.__dict__.get("pending", {}).pop(name, None)
        if refresh is not None:
            try:
                refresh.result()
            except Exception:  # noqa: BLE001 - e.g. its commits were cleaned up: open it afresh when needed
                handles.pop(name, None)
        return handles
