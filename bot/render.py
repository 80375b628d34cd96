"""Block Kit as plain text, for the terminal (``sopgap demo``) and for logs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from slack_sdk.models.blocks import Block

from bot.blocks.text import unescape

_BOLD = re.compile(r"(?<!\w)\*(\S(?:[^*\n]*\S)?)\*(?!\w)")
_EMOJI = {":rotating_light:": "!!", ":white_check_mark:": "ok", ":warning:": "!",
          ":hourglass:": "…", ":calendar:": "", ":dart:": ""}


def _plain(text: str) -> str:
    for code, symbol in _EMOJI.items():
        text = text.replace(code, symbol)
    return unescape(_BOLD.sub(r"\1", text))


def _text_of(obj: dict[str, Any] | None) -> str:
    return _plain(obj["text"]) if obj else ""


def render_blocks(blocks: Iterable[Block | dict[str, Any]]) -> str:
    lines: list[str] = []
    for block in blocks:
        data = block.to_dict() if isinstance(block, Block) else block
        kind = data["type"]
        if kind == "header":
            title = _text_of(data["text"])
            lines += [title, "=" * min(len(title), 78)]
        elif kind == "section":
            if data.get("text"):
                lines.append(_text_of(data["text"]))
            for field in data.get("fields", []):
                name, _, value = _text_of(field).partition("\n")
                lines.append(f"  {name:<32} {value}")
        elif kind == "context":
            lines.append("  " + " ".join(_text_of(e) for e in data["elements"] if "text" in e))
        elif kind == "divider":
            lines.append("-" * 40)
        elif kind == "actions":
            labels = [f"[{_text_of(e.get('text'))}]" for e in data["elements"] if e.get("text")]
            lines.append(" ".join(labels))
        elif kind == "image":
            lines.append(f"(image: {data.get('alt_text', '')})")
    return "\n".join(lines)
