"""Whole-message phrases: a message made only of greetings, thanks and goodbyes, in any mix.

An intent's ``phrases`` map acts to phrases per language (``greeting: {en: [hi, good
morning], de: [hallo, guten morgen]}``). A message is *made of* them when, folded, it is one
or more phrases joined by punctuation, spaces, "and" or "und": "Hallo, guten Morgen!", "Danke
und tschüss", "thanks a lot, bye", "Moin moin". Anything else in it ("Thanks, now open
Excel") and it is not. :meth:`PhraseMatcher.acts` lists the acts said, in order, so a reply
can answer each ("Danke" gets thanks back, not "Hello!").
"""

from __future__ import annotations

import re

from graph.intents.text import keyword_regex

_SEPARATOR = r"[\W_]+(?:(?:and|und|&)[\W_]+)?"


class PhraseMatcher:
    """The phrases of one intent, compiled: whole-message match and the acts found."""

    def __init__(self, phrases: dict[str, dict[str, tuple[str, ...]]]) -> None:
        named: list[str] = []
        for index, by_language in enumerate(phrases.values()):
            texts = {keyword_regex(p) for texts in by_language.values() for p in texts}
            if texts:
                ordered = sorted(texts, key=lambda regex: (-len(regex), regex))
                named.append(f"(?P<a{index}>{'|'.join(ordered)})")
        self._acts = list(phrases)
        # every phrase of every act, longest first: "good morning" before "good"
        plain = sorted(
            {keyword_regex(p) for acts in phrases.values() for ps in acts.values() for p in ps},
            key=lambda regex: (-len(regex), regex),
        )
        one = f"(?:{'|'.join(plain)})(?!\\w)" if plain else r"(?!)"
        self._one = re.compile(rf"(?<!\w)(?:{'|'.join(named) or '(?!)'})(?!\w)")
        self._whole = re.compile(rf"[\W_]*{one}(?:{_SEPARATOR}{one})*[\W_]*")

    def whole(self, folded: str) -> bool:
        """Whether the folded message is made only of these phrases."""
        return bool(folded) and self._whole.fullmatch(folded) is not None

    def acts(self, folded: str) -> list[str]:
        """The acts whose phrases occur in the folded message, in order, each once."""
        found: list[str] = []
        for match in self._one.finditer(folded):
            group = match.lastgroup
            act = self._acts[int(group[1:])] if group else None
            if act is not None and act not in found:
                found.append(act)
        return found
