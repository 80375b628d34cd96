"""What a listener needs, gathered once from Bolt's injected arguments."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from sqlalchemy.orm import Session, sessionmaker

from bot.blocks.text import escape
from bot.errors import UserError
from bot.slack_client import post_in_channel
from sop_core.config import Settings

__all__ = ["Ctx", "UserError", "post_in_channel"]  # the last two re-exported for listeners


@dataclass(frozen=True)
class Ctx:
    team_id: str
    user_id: str
    channel_id: str | None
    client: WebClient
    settings: Settings
    sessions: sessionmaker[Session]
    respond: Respond | None = None
    # Hold one for a command's work after ack() (bot/work_slots.py).
    work_slot: AbstractContextManager[Any] = field(default_factory=nullcontext)
    # Each statement its own transaction (sop_core/db.py): one-statement steps and
    # reads that need not agree with each other.
    autocommit_sessions: sessionmaker[Session] | None = None

    @property
    def quick_sessions(self) -> sessionmaker[Session]:
        return self.autocommit_sessions or self.sessions

    def in_turn(self, work: Callable[[], object]) -> None:
        """Run ``work`` holding a work slot, now or, queued without a thread, once its
        turn comes (bot/work_slots.py); at once where there are no slots."""
        run = getattr(self.work_slot, "run", None)
        if run is None:
            work()
        else:
            run(work)

    @classmethod
    def of(cls, context: dict[str, Any], body: dict[str, Any],
           respond: Respond | None = None) -> Ctx:
        user = body.get("user_id") or (body.get("user") or {}).get("id") or context.get("user_id")
        channel = (body.get("channel_id") or (body.get("channel") or {}).get("id")
                   or (body.get("container") or {}).get("channel_id") or context.get("channel_id"))
        return cls(team_id=context["team_id"], user_id=user, channel_id=channel,
                   client=context["client"], settings=context["settings"],
                   sessions=context["sessions"], respond=respond,
                   work_slot=context.get("work_slots") or nullcontext(),
                   autocommit_sessions=context.get("autocommit_sessions"))

    def tell(self, text: str, *, escaped: bool = False) -> None:
        """A short message only this person sees (ephemeral)."""
        message = text if escaped else escape(text)
        if self.respond is not None:
            self.respond(text=message, response_type="ephemeral", replace_original=False)
        elif self.channel_id is not None:
            self.client.chat_postEphemeral(channel=self.channel_id, user=self.user_id,
                                           text=message)
        else:  # a modal or the App Home: no channel to whisper in, so a DM
            self.client.chat_postMessage(channel=self.user_id, text=message)
