"""Content checks Slack applies beyond argument presence: Block Kit, views, text size.

Validation is delegated to slack_sdk's own Block Kit models (the limits they encode are
Slack's), plus the few limits they do not enforce themselves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from .models import Rejected

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_TEXT = 40_000
MAX_PRIVATE_METADATA = 3_000

Check = Callable[[dict[str, Any]], None]


class _SkippedPartsLog(logging.Handler):
    """Collects the warnings slack_sdk's models log when they silently drop a part.

    An unknown element type (e.g. a misspelt ``"buton"``) is only logged and skipped by
    the models, while Slack rejects the whole payload; capturing the log per thread
    turns it into a violation without mixing in the app's own threads.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        messages: list[str] | None = getattr(self._local, "messages", None)
        if messages is not None:
            messages.append(record.getMessage())

    @contextmanager
    def collect(self) -> Iterator[list[str]]:
        self._local.messages = []
        try:
            yield self._local.messages
        finally:
            self._local.messages = None


_skipped_parts = _SkippedPartsLog()
logging.getLogger("slack_sdk.models").addHandler(_skipped_parts)


def _render(what: str, render: Callable[[], object]) -> list[str]:
    """Run a model's ``to_dict()`` (which validates) and report why Slack would refuse it."""
    with _skipped_parts.collect() as skipped:
        try:
            render()
        # Any exception while parsing means a payload Slack would not accept either.
        except Exception as exc:
            return [f"{what}: {type(exc).__name__}: {exc}"]
    return [f"{what}: {message}" for message in skipped]


def block_problems(blocks: object, limit: int) -> list[str]:
    """Problems with a ``blocks`` array: its type, its size, then each block in turn."""
    if not isinstance(blocks, list):
        return [f"blocks must be a JSON array, got {type(blocks).__name__}"]
    if len(blocks) > limit:
        return [f"{len(blocks)} blocks, Slack allows at most {limit}"]
    if not all(isinstance(block, dict) for block in blocks):
        return ["every block must be a JSON object"]
    problems: list[str] = []
    for index, block in enumerate(blocks):
        problems += _render(f"blocks[{index}] ({block.get('type')})", partial(_render_block, block))
    return problems


def _render_block(block: dict[str, Any]) -> None:
    """Parse one block (where unknown nested elements get logged) and validate it."""
    parsed = Block.parse(block)
    if parsed is None:
        raise ValueError("unknown block type")
    parsed.to_dict()


def view_problems(view: object) -> list[str]:
    """Problems with a modal or Home tab view, the limits first for a readable message."""
    if not isinstance(view, dict):
        return [f"view must be a JSON object, got {type(view).__name__}"]
    metadata = view.get("private_metadata")
    if metadata is not None and len(str(metadata)) > MAX_PRIVATE_METADATA:
        return [f"private_metadata has {len(str(metadata))} chars, max {MAX_PRIVATE_METADATA}"]
    if view.get("type") == "modal" and not view.get("title"):
        return ["a modal view needs a title"]
    problems = block_problems(view.get("blocks"), MAX_VIEW_BLOCKS)
    return problems or _render("view", lambda: View(**view).to_dict())


def check_message(args: dict[str, Any]) -> None:
    """chat.postMessage / chat.postEphemeral: something to show, within Slack's limits."""
    if not any(args.get(key) for key in ("text", "blocks", "attachments")):
        raise Rejected("no_text", "message has no text, blocks or attachments")
    check_message_update(args)


def check_message_update(args: dict[str, Any]) -> None:
    """chat.update (and the shared part of posting): text size and blocks."""
    text = args.get("text")
    if isinstance(text, str) and len(text) > MAX_MESSAGE_TEXT:
        raise Rejected("msg_too_long", f"text has {len(text)} chars, max {MAX_MESSAGE_TEXT}")
    check_blocks(args)


def check_blocks(args: dict[str, Any]) -> None:
    """Any method taking optional message blocks."""
    if "blocks" in args:
        _reject_if(block_problems(args["blocks"], MAX_MESSAGE_BLOCKS))


def check_view(args: dict[str, Any]) -> None:
    """views.open / push / update / publish."""
    if "view" in args:
        _reject_if(view_problems(args["view"]))


def _reject_if(problems: list[str]) -> None:
    if problems:
        raise Rejected("invalid_blocks", "; ".join(problems))


CHECKS: dict[str, Check] = {
    "chat.postMessage": check_message,
    "chat.postEphemeral": check_message,
    "chat.update": check_message_update,
    "files.completeUploadExternal": check_blocks,
    "views.open": check_view,
    "views.push": check_view,
    "views.update": check_view,
    "views.publish": check_view,
}
