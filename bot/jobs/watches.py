"""Watched scopes after a new snapshot: post new trigger points, update earlier ones.

Each watch is evaluated once per snapshot (the latest of its workspace). The evaluation
claims its own outbox key first, so two clocks or a load's ``after_load`` racing the
clock never evaluate the same watch twice at once; every post or update has its own key
(watch + snapshot + scope). The evaluation is marked done only when each of its steps
is settled: a step that failed (Slack down, rate limited past the retries) leaves the
watch due, and the next pass re-plans it — what was sent is then unchanged, so only the
rest goes out. A step Slack refused for good (the channel is gone) is settled as failed:
it is not retried, and does not hold the watch due.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import earlier_posts
from bot.blocks.text import escape
from bot.blocks.trigger import headline, trigger_point_blocks
from bot.jobs import JobContext, PassReport, deliver, send_each
from bot.slack_client import SlackUnanswered, in_channel, post_in_channel
from sop_core import outbox
from sop_core.services import triggers
from sop_core.services.watches import (
    KIND_EVALUATED,
    DueWatch,
    StepKind,
    WatchStep,
    apply_figures,
    due_watches,
    plan_watch,
)

log = logging.getLogger(__name__)


def run(job: JobContext) -> PassReport:
    """Evaluate every watch not yet evaluated against its workspace's latest snapshot."""
    with job.sessions() as session:
        due = due_watches(session)
    return _evaluate_all(job, due)


def after_load(job: JobContext, snapshot_id: int) -> PassReport:
    """Right after a load (CLI, scheduled refresh): the watches that see this snapshot."""
    with job.sessions() as session:
        due = due_watches(session, snapshot_id=snapshot_id)
    return _evaluate_all(job, due)


def evaluate_watch(job: JobContext, watch_id: int) -> PassReport:
    """One watch now (just added), against the latest snapshot, if not done already."""
    with job.sessions() as session:
        due = [d for d in due_watches(session) if d.watch_id == watch_id]
    return _evaluate_all(job, due)


def _evaluate_all(job: JobContext, due: list[DueWatch]) -> PassReport:
    return send_each(job, due, lambda client, item: _evaluate(job, client, item),
                     what="watch evaluation")


def _evaluate(job: JobContext, client: WebClient, item: DueWatch) -> PassReport:
    claim = outbox.claim(job.sessions, item.key, kind=KIND_EVALUATED, team_id=item.team_id,
                         target=item.channel_id, now=job.now)
    if claim is None:
        return PassReport(skipped=1)  # another pass is evaluating it right now
    report = PassReport()
    complete = True
    try:
        with job.sessions() as session:
            plan = plan_watch(session, job.settings, item.watch_id, item.snapshot_id)
        for step in plan.steps if plan is not None else ():
            try:
                sent = deliver(job, step.key, partial(_send, job, client, step),
                               kind=f"watch_{step.kind}", team_id=step.team_id,
                               target=step.channel_id)
            except outbox.GaveUp:  # logged by the outbox; settled, so not holding the watch
                report.failed += 1
                continue
            except Exception:
                log.exception("watch %d: %s of %s failed; it stays due", step.watch_id,
                              step.kind, step.key)
                report.failed += 1
                complete = False
                continue
            if sent:
                report.sent += 1
            else:
                with job.sessions() as session:
                    complete &= bool(outbox.settled(session, [step.key]))
                report.skipped += 1
        if plan is not None:
            report.skipped += plan.held_back
    except Exception as error:
        log.exception("evaluating watch %d against snapshot #%d failed", item.watch_id,
                      item.snapshot_id)
        outbox.mark_failed(job.sessions, item.key, f"{type(error).__name__}: {error}",
                           now=job.now)
        return PassReport(sent=report.sent, skipped=report.skipped, failed=report.failed + 1)
    if complete:
        outbox.mark_sent(job.sessions, item.key, now=job.now)
    else:
        outbox.mark_failed(job.sessions, item.key, "a step failed", now=job.now)
    return report


def _send(job: JobContext, client: WebClient, step: WatchStep) -> str | None:
    if step.kind == StepKind.POST:
        return _post(job, client, step)
    assert step.point_id is not None and step.message_ts is not None
    return _update(job, client, step, step.point_id, step.message_ts)


def _update(job: JobContext, client: WebClient, step: WatchStep, point_id: int,
            message_ts: str) -> str:
    with job.sessions() as session:
        status, since = triggers.status_after(session, point_id, step.report, now=job.now)
    blocks = trigger_point_blocks(step.report, trigger_point_id=point_id, status=status,
                                  status_changed_at=since)
    text = escape(headline(step.report.result))
    try:
        in_channel(client, step.channel_id, lambda: client.chat_update(
            channel=step.channel_id, ts=message_ts, text=text, blocks=blocks))
    except SlackApiError as error:
        if error.response.get("error") != "message_not_found":
            raise
        # Someone deleted the message: post it again and keep the conversation there.
        posted = post_in_channel(client, step.channel_id, text=text, blocks=blocks,
                                 metadata=earlier_posts.tag(earlier_posts.TRIGGER_POINT,
                                                            trigger_point_id=point_id))
        triggers.complete_post(job.sessions, point_id, str(posted["ts"]))
        apply_figures(job.sessions, replace(step, point_id=point_id), now=job.now)
        return str(posted["ts"])
    note = post_in_channel(client, step.channel_id, thread_ts=message_ts,
                           text=step.note, reply_broadcast=step.reopened)
    apply_figures(job.sessions, replace(step, point_id=point_id), now=job.now)
    return str(note["ts"])


class PostInProgress(RuntimeError):
    """Another process is posting this gap's message right now: the step waits."""


def _post(job: JobContext, client: WebClient, step: WatchStep) -> str:
    """A new trigger point, unless the gap got its message meanwhile (then updated).

    The row is claimed before the post and completed after it, retrying while the
    database is away, so the next pass finds the message and never posts it again."""
    living = triggers.claim_living(job.sessions, step.report, team_id=step.team_id,
                                   channel_id=step.channel_id, created_by=None,
                                   watch_id=step.watch_id)  # a lease in real time
    if living.claim == triggers.Claim.BUSY:
        raise PostInProgress(f"trigger point {living.point_id} is being posted")
    if living.claim == triggers.Claim.UPDATE:
        assert living.message_ts is not None
        return _update(job, client, step, living.point_id, living.message_ts)
    try:
        blocks = trigger_point_blocks(step.report, trigger_point_id=living.point_id,
                                      status=triggers.initial_status(step.report))
        ts = earlier_posts.post_trigger_point(client, step.channel_id, living, blocks=blocks,
                                              text=escape(headline(step.report.result)))
    except Exception as error:
        triggers.release(job.sessions, living,
                         maybe_posted=isinstance(error, SlackUnanswered))
        raise
    triggers.complete_post(job.sessions, living.point_id, ts)
    return ts
