"""The stage ticket: the one handshake between a run's staging step and its publishing step.

The staging step issues a ticket (stage id, run id, audit outcome, the snapshot it staged against) at
``_tickets/<partition>/<run id>.json`` (the partition the orchestrator knows); the publishing step of the
*same run* redeems it. Keyed by run, a ticket cannot be overwritten by another run of the same partition,
and redeeming checks that the stage was built by the run, so two runs of one partition never publish each
other's stage. When both publish, the publish protocol lets one win and the other's stage is stale: if the
winner staged the same work (``work``: a batch manifest, a file version) after this run's base snapshot,
redeeming is a no-op that names the winner; otherwise it raises ``StaleStageError`` (stage again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from mm_platform.errors import AuditFailedError, ConfigError, StaleStageError
from mm_platform.lake import faults
from mm_platform.lake.audit import CheckResult
from mm_platform.lake.publish import Publisher
from mm_platform.lake.publish_log import LogEntry
from mm_platform.lake.stage import load_stage
from mm_platform.lake.staged import PublishResult, StagedPartition
from mm_platform.log import get_logger, kv

__all__ = ["TICKETS_DIR", "Redemption", "StageTicket", "issue_ticket", "redeem_ticket"]

TICKETS_DIR = "_tickets"
log = get_logger("mm_platform.lake.ticket")


@dataclass(frozen=True)
class StageTicket:
    """A run's claim on the stage its audit passed (or on nothing, when staging found no change)."""

    partition: str
    """The partition as the orchestrator names it (a batch id, an annotation set)."""
    run_id: str
    stage_id: str | None
    """``None``: staging decided there is nothing to publish (a no-op)."""
    work: str
    """What was staged from; two runs' tickets with equal ``work`` stand for the same publish."""
    passed: bool
    """The audit's outcome; a failed ticket publishes nothing."""
    base_seq: int
    """The latest published snapshot when staging began: a publish of the partition after it supersedes."""
    failures: tuple[str, ...] = ()
    """Names of the checks that failed."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """What the domain wants back at publish (e.g. an annotation revision number)."""
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "failures": list(self.failures), "extra": dict(self.extra)}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> StageTicket:
        return cls(**{**doc, "failures": tuple(doc.get("failures", ())), "extra": dict(doc.get("extra", {}))})


@dataclass(frozen=True)
class Redemption:
    """What redeeming a ticket did: published its stage, found nothing to publish, or was superseded."""

    ticket: StageTicket
    result: PublishResult | None = None
    """The publish (``noop`` if this very stage was already published); ``None`` if nothing was published."""
    superseded_by: LogEntry | None = None
    """Another run's publish of the same partition that landed after this run staged."""


def ticket_path(partition: str, run_id: str) -> str:
    return f"{TICKETS_DIR}/{quote(partition, safe='')}/{quote(run_id, safe='')}.json"


def issue_ticket(
    publisher: Publisher,
    partition: str,
    run_id: str,
    base_seq: int,
    staged: StagedPartition | None,
    checks: Sequence[CheckResult] = (),
    *,
    work: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> StageTicket:
    """Record the run's stage and its audit outcome (``staged=None``: nothing to publish)."""
    if not run_id:
        raise ConfigError(f"partition {partition}: a stage ticket needs a run id")
    if staged is not None and staged.stage.run_id != run_id:
        raise ConfigError(
            f"partition {partition}, run {run_id}: stage {staged.stage.stage_id} was built by run "
            f"{staged.stage.run_id or '(none)'}",
            hint="stage the partition in this run",
        )
    ticket = StageTicket(
        partition=partition,
        run_id=run_id,
        stage_id=None if staged is None else staged.stage.stage_id,
        work=work or partition,
        passed=all(c.passed for c in checks),
        base_seq=base_seq,
        failures=tuple(c.name for c in checks if not c.passed),
        extra=dict(extra or {}),
    )
    publisher.location.write_json(ticket_path(partition, run_id), ticket.to_json())
    log.info("ticket %s", kv(partition=partition, run=run_id, stage=ticket.stage_id, passed=ticket.passed))
    faults.fault_point("after_ticket")
    return ticket


def load_ticket(publisher: Publisher, partition: str, run_id: str) -> StageTicket:
    doc = publisher.location.read_json(ticket_path(partition, run_id))
    if doc is None:
        raise ConfigError(
            f"partition {partition}: run {run_id} holds no stage ticket",
            hint="a publishing step publishes only what its own run staged: materialize the staged assets in this run",
        )
    ticket = StageTicket.from_json(doc)
    if ticket.partition != partition or ticket.run_id != run_id:
        raise ConfigError(
            f"ticket {ticket_path(partition, run_id)} names partition {ticket.partition}, run {ticket.run_id}"
        )
    return ticket


def redeem_ticket(publisher: Publisher, partition: str, run_id: str) -> Redemption:
    """Publish the stage this run's ticket names, after checking that it is this run's and it passed."""
    ticket = load_ticket(publisher, partition, run_id)
    if not ticket.passed:
        raise AuditFailedError(
            f"partition {partition}: the audit of run {run_id} failed ({', '.join(ticket.failures)}); "
            "nothing is published",
            partition=partition,
            failures=[{"name": name} for name in ticket.failures],
        )
    if ticket.stage_id is None:
        return Redemption(ticket)
    stage = load_stage(publisher.location, ticket.stage_id)
    if stage is None:
        raise ConfigError(f"partition {partition}: stage {ticket.stage_id} is gone", hint="stage it again")
    if stage.run_id != run_id:
        raise ConfigError(
            f"partition {partition}: stage {stage.stage_id} was built by run {stage.run_id}, not {run_id}",
            hint="stage the partition again in this run",
        )
    try:
        return Redemption(ticket, publisher.publish(stage))
    except StaleStageError:
        winner = _published_since(publisher, ticket)
        if winner is None:
            raise
        log.info("superseded %s", kv(partition=partition, run=run_id, by_run=winner.run_id, seq=winner.publish_seq))
        return Redemption(ticket, superseded_by=winner)


def _published_since(publisher: Publisher, ticket: StageTicket) -> LogEntry | None:
    """The newest publish, after the ticket's base snapshot, of another run's ticket for the same work."""
    for entry in reversed(publisher.log.load().published()):
        if (entry.publish_seq or 0) <= ticket.base_seq:
            break
        if not entry.run_id or entry.run_id == ticket.run_id:
            continue
        doc = publisher.location.read_json(ticket_path(ticket.partition, entry.run_id))
        if doc is not None and doc.get("stage_id") == entry.stage_id and doc.get("work") == ticket.work:
            return entry
    return None
