"""Replies about a channel's settings: its S&OP meeting and its watched scopes.

Short mrkdwn texts for ephemeral replies; everything from users or data is escaped.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.blocks.text import SECTION_TEXT_MAX, bullet_list, escape
from sop_core.meetings import EXAMPLE, Every, Meeting, lead_label
from sop_core.services.watches import WatchInfo, watch_label

UPCOMING = 3


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _local(instant: datetime, tz: str) -> str:
    local = instant.astimezone(ZoneInfo(tz))
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} {local.tzname()}"


def recurrence(meeting: Meeting) -> str:
    """``every month on the 31st (the last day in shorter months), 10:00 Europe/Paris``."""
    at = f"{meeting.first:%H:%M} {meeting.tz}"
    if meeting.every == Every.MONTH:
        day = meeting.first.day
        shorter = " (the last day in shorter months)" if day > 28 else ""
        return f"every month on the {_ordinal(day)}{shorter}, {at}"
    return f"{meeting.every.label} on {meeting.first:%A}s, {at}"


def meeting_text(meeting: Meeting, now: datetime, *, changed: bool = False) -> str:
    """The channel's meeting, its next occurrences and when each digest goes out."""
    head = "S&amp;OP meeting set for this channel" if changed else "This channel's S&amp;OP meeting"
    lines = [f"*{head}:* {escape(recurrence(meeting))}; the digest is posted here "
             f"{lead_label(meeting.lead)} before each meeting (on the Friday before when "
             "that is a weekend)."]
    lines.append("*Next meetings* (digest in brackets):")
    for start in meeting.upcoming(now, UPCOMING):
        lines.append(f"• {escape(_local(start, meeting.tz))} "
                     f"(digest {escape(_local(meeting.send_at(start), meeting.tz))})")
    lines.append("Change it with `/gap meeting …`, stop it with `/gap meeting off`, "
                 "or post a digest now with `/gap digest`.")
    return "\n".join(lines)


def no_meeting_text() -> str:
    return (f"No S&amp;OP meeting is set for this channel. Set one with {EXAMPLE} "
            "(`every=month|week|2weeks|4weeks`, `lead=` how long before it the digest goes "
            "out).")


def watches_text(watches: list[WatchInfo]) -> str:
    if not watches:
        return ("This channel watches no scope. Start with `/gap watch region=EU` "
                "(add `by=category` to get a trigger point per category).")
    lines = [f"• {escape(watch_label(w))}" for w in watches]
    return ("*Scopes this channel watches* (after each data load I post new trigger points "
            "and update the ones I posted):\n"
            + bullet_list(lines, most=50, limit=SECTION_TEXT_MAX - 200)
            + "\nStop one with `/gap unwatch region=EU`, or all with `/gap unwatch all`.")


def watch_added_text(watch: WatchInfo, *, created: bool, checked: bool) -> str:
    label = escape(watch_label(watch))
    head = (f"This channel now watches *{label}*." if created
            else f"This channel already watched that scope; now: *{label}*.")
    if not checked:
        return (head + " No planning data is loaded yet: I will check it at the first load, "
                "then after every load.")
    sub = f", and each {escape(watch.by)} in it," if watch.by else ""
    return (head + f" When the gap{sub} crosses the trigger rule I post it here; after each "
            "data load I update what I posted.")


def unwatched_text(removed: list[WatchInfo], remaining: list[WatchInfo]) -> str:
    if not removed:
        return "This channel was not watching that scope.\n" + watches_text(remaining)
    names = ", ".join(f"*{escape(watch_label(w))}*" for w in removed[:10])
    more = f" and {len(removed) - 10} more" if len(removed) > 10 else ""
    return (f"This channel no longer watches {names}{more}. Trigger points already posted "
            "stay as they are.")
