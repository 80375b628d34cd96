"""What a listener needs, gathered once from Bolt's injected arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_bolt.context.respond import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session, sessionmaker

from bot.blocks.text import escape
from sop_core.config import Settings


class UserError(ValueError):
    """Input a person can fix: the message is shown to them, only to them."""


@dataclass(frozen=True)
class Ctx:
    team_id: str
    user_id: str
    channel_id: str | None
    client: WebClient
    settings: Settings
    sessions: sessionmaker[Session]
    respond: Respond | None = None

    @classmethod
    def of(cls, context: dict[str, Any], body: dict[str, Any],
           respond: Respond | None = None) -> Ctx:
        user = body.get("user_id") or (body.get("user") or {}).get("id") or context.get("user_id")
        channel = (body.get("channel_id") or (body.get("channel") or {}).get("id")
                   or (body.get("container") or {}).get("channel_id") or context.get("channel_id"))
        return cls(team_id=context["team_id"], user_id=user, channel_id=channel,
                   client=context["client"], settings=context["settings"],
                   sessions=context["sessions"], respond=respond)

    def tell(self, text: str, *, escaped: bool = False) -> None:
        """A short message only this person sees (ephemeral)."""
        message = text if escaped else escape(text)
        if self.respond is not None:
            self.respond(text=message, response_type="ephemeral", replace_original=False)
        elif self.channel_id is not None:
            self.client.chat_postEphemeral(channel=self.channel_id, user=self.user_id,
                                           text=message)


def post_in_channel(client: WebClient, channel: str, **message: Any) -> dict[str, Any]:
    """``chat.postMessage``, joining a public channel first if the bot is not in it yet."""
    try:
        return client.chat_postMessage(channel=channel, **message).data  # type: ignore[return-value]
    except SlackApiError as error:
        if error.response.get("error") != "not_in_channel":
            raise
        try:
            client.conversations_join(channel=channel)
        except SlackApiError:
            raise UserError("I am not in this channel: invite me with `/invite @sopgap`, "
                            "then try again.") from None
        return client.chat_postMessage(channel=channel, **message).data  # type: ignore[return-value]
