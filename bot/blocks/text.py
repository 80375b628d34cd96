"""Making any text safe and short enough for Slack (docs/reference/slack.md)."""

from __future__ import annotations

SECTION_TEXT_MAX = 3000
BUTTON_TEXT_MAX = 75
HEADER_MAX = 150
FIELD_MAX = 2000


def escape(text: object) -> str:
    """Escape text from users or data for mrkdwn: no smuggled ``<!channel>`` or links."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """Slack sends ``&``, ``<`` and ``>`` in command text escaped; read them back."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def cut(text: str, limit: int) -> str:
    """Shorten to ``limit`` characters with an ellipsis (never cutting an escape in two)."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    amp = head.rfind("&")
    if amp != -1 and ";" not in head[amp:]:
        head = head[:amp]
    return head + "…"


def bullet_list(lines: list[str], *, limit: int = SECTION_TEXT_MAX, most: int = 10,
                total: int | None = None) -> str:
    """Lines joined as a list, cut to fit, with "and N more" for what was left out.
    ``total``: how many lines there are in all, when ``lines`` holds only the first ones
    (formatting thousands of lines to show five is most of a message's cost)."""
    total = len(lines) if total is None else total
    shown: list[str] = []
    for index, line in enumerate(lines[:most]):
        left = total - index
        candidate = "\n".join([*shown, line])
        if len(candidate) + len(f"\n…and {left} more") > limit:
            break
        shown.append(line)
    rest = total - len(shown)
    if rest:
        shown.append(f"…and {rest} more")
    return "\n".join(shown)
