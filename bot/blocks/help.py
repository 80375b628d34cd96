"""``/gap help``: the usage, shown only to the caller."""

from __future__ import annotations

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

USAGE = [
    ("`/gap region=EU category=Snacks by=channel`",
     "the gap for that scope, with its drivers: posted here when it crosses the trigger "
     "rule, else shown only to you with a *Post to channel* button; a gap already posted "
     "here is updated in place (`horizon=fy|ytd|rest|2026|2026-Q3|2026-09`, "
     "`metric=revenue`; quote values with spaces: `region=\"North America\"`; several "
     "values: `region=EU,NA`)"),
    ("`/gap region=EU post`", "post it here whatever the rule says"),
    ("`/gap close region=EU category=Snacks reason: …`",
     "close a gap (channel leads), with the reason in its thread"),
    ("`/gap actions [mine|overdue|all]`", "the SMART actions register (only you see it)"),
    ("`/gap watch region=EU` · `unwatch …` · `watches`",
     "post new trigger points for a scope here after each data load"),
    ("`/gap meeting 2026-12-08 10:00 tz=Europe/Paris every=month lead=24h` · `meeting` · "
     "`meeting off`", "this channel's S&OP meeting, for the pre-meeting digest"),
    ("`/gap digest`", "post the digest now"),
    ("`/gap history region=EU`", "past gaps of that scope with root causes and actions"),
    ("`/gap export actions|gaps [filters]`", "the register as CSV and XLSX files"),
    ("`/gap threshold 5% [floor=100000]`", "this channel's trigger rule"),
    ("`/gap leads @alice @bob` · `leads`",
     "name this channel's leads, or see them: once a channel has leads, only they or a "
     "workspace admin change its threshold, meeting, watches and leads, or confirm a root "
     "cause (a replaced root cause keeps its earlier versions)"),
]


def help_blocks(error: str | None = None) -> list[Block]:
    blocks: list[Block] = []
    if error:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f":warning: {error}")))
    lines = "\n".join(f"• {usage}: {meaning}" for usage, meaning in USAGE)
    blocks += [
        SectionBlock(text=MarkdownTextObject(text="*S&OP gaps, into action*\n" + lines)),
        ContextBlock(elements=[MarkdownTextObject(
            text="A gap is a trigger point when |gap %| reaches the channel's threshold.")]),
    ]
    return blocks
