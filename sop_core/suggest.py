"""What to answer a ``/gap`` word that is neither a subcommand nor a filter (pure)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from sop_core.filters import shown


def closest_words(word: str, choices: Iterable[str], *, most: int = 2) -> list[str]:
    """The choices a typo most likely meant (``acitons`` → ``actions``), best first."""
    folded = {c.casefold(): c for c in choices}
    found = difflib.get_close_matches(word.casefold(), list(folded), n=most, cutoff=0.6)
    if not found:
        found = [f for f in folded if len(word) >= 3 and f.startswith(word.casefold()[:3])]
    return [folded[f] for f in found[:most]]


def unknown_subcommand(word: str, subcommands: Iterable[str]) -> str:
    """``I don't know `bogus`: did you mean `actions`? …`` (mrkdwn, escaped by the caller
    for Slack; the word itself is shortened and kept inside backticks)."""
    names = sorted(set(subcommands) | {"help"})
    guesses = closest_words(word, names)
    said = shown(word).replace("`", "'")
    if guesses:
        head = f"I don't know `{said}`: did you mean " + " or ".join(
            f"`{g}`" for g in guesses) + "?"
    else:
        head = f"I don't know `{said}`."
    return (f"{head} Subcommands: {', '.join(f'`{n}`' for n in names)}. A gap is asked with "
            "filters, e.g. `/gap region=EU by=channel`.")
