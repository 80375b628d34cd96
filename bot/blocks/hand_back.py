"""The DM to a person named owner of an action by someone else: with a button to hand
it back (the text is already escaped mrkdwn)."""

from __future__ import annotations

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, SectionBlock

from bot.ids import ActionId


def owner_dm_blocks(text: str, action_id: int) -> list[Block]:
    return [
        SectionBlock(text=text),
        ActionsBlock(elements=[ButtonElement(
            text="Hand it back", action_id=ActionId.ACTION_HAND_BACK, value=str(action_id))]),
    ]
