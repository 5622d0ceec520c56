"""The folded form of a request that every tier reads, and the regexes built over it.

Folding: Unicode NFC, case-folded (ß→ss), umlauts spelled out (ä→ae, ö→oe, ü→ue) and
typographic apostrophes made plain. So "Öffne", "oeffne" and "ÖFFNE" are one word, and rules
can be written either way. Keywords and patterns are folded the same way and wrapped in word
boundaries (``(?<!\\w)`` … ``(?!\\w)``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

#: Only this much of a request is looked at: rules look at the start and at short messages,
#: and a bound keeps one pathological line from slowing a batch of thousands.
MAX_TEXT_CHARS = 1000

# Lower-case umlauts only: text is case-folded first. Patterns are not case-folded (that would
# turn \S into \s), so the pattern table also maps the capitals.
_FOLD_TEXT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "\u2019": "'", "\u2018": "'"})
_FOLD_PATTERN = str.maketrans(
    {
        "ä": "ae",
        "ö": "oe",
        "ü": "ue",
        "Ä": "ae",
        "Ö": "oe",
        "Ü": "ue",
        "ß": "ss",
        "ẞ": "ss",
        "\u2019": "'",
        "\u2018": "'",
    }
)
NEVER = re.compile(r"(?!)")


def fold(text: str) -> str:
    """The form rules match against: NFC, case-folded (ß→ss), umlauts spelled out."""
    return unicodedata.normalize("NFC", text).casefold().translate(_FOLD_TEXT)


def fold_request(text: str) -> str:
    """A request as every tier reads it: its first MAX_TEXT_CHARS characters, folded."""
    return fold(text[:MAX_TEXT_CHARS]).strip()


def fold_pattern(pattern: str) -> str:
    return unicodedata.normalize("NFC", pattern).translate(_FOLD_PATTERN)


def keyword_regex(keyword: str) -> str:
    """A keyword phrase as a regex: literal words, any whitespace between, ``*`` = any ending."""
    word = fold(keyword).strip()
    prefix = word.endswith("*")
    words = word.rstrip("*").split()
    body = r"\s+".join(re.escape(w) for w in words)
    return body + (r"\w*" if prefix else "")


def bounded(regex: str) -> str:
    return rf"(?<!\w)(?:{regex})(?!\w)"


def compile_any(regexes: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern for many: ``(?<!\\w)(?:(?:a)|(?:b))(?!\\w)``. Same matches as bounding each
    alternative, but a position inside a word is rejected once, not once per alternative."""
    parts = [f"(?:{r})" for r in regexes]
    if not parts:
        return None
    return re.compile(bounded("|".join(parts)), re.IGNORECASE)


def words(folded: str) -> list[str]:
    """The words of a folded text (letters, digits, apostrophes and inner hyphens)."""
    return re.findall(r"\w+(?:['-]\w+)*", folded)


def wordset(text: str) -> frozenset[str]:
    """The whitespace-separated words of a lexicon written as one string."""
    return frozenset(text.split())
