"""Whether a model's text can be shown as it is: something said, not looping, no made-up ToDos.

A small model at its token limit, or one that lost its way, writes text that reads like an
answer and is not one: the same sentence twenty times, or a report on ToDos `t6` to `t28` of a
plan that had `t1` to `t5`. Such text is never shown as the answer or kept as a ToDo's output:
the caller asks again or falls back (`nodes/respond.py`, `nodes/executors/llm.py`).
A text cut off at the token limit is the model client's to tell (`graph.llm`).

The rules are plain and cheap, and rather let a poor text through than refuse a good one:
- nothing but blanks;
- a sentence of four words or more said three times or more;
- a run of eight words said four times or more (looping without full stops);
- with `todo_ids`: a ToDo id (`t7`) that is not one of them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection

SENTENCE_WORDS, SENTENCE_TIMES = 4, 3
RUN_WORDS, RUN_TIMES = 8, 4

_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")
_TODO_ID = re.compile(r"\b[tT](\d{1,4})\b")


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def repetition(text: str) -> str | None:
    """How the text repeats itself, or None."""
    sentences = Counter(
        " ".join(ws) for s in _SENTENCE_END.split(text) if len(ws := _words(s)) >= SENTENCE_WORDS
    )
    if sentences:
        sentence, times = sentences.most_common(1)[0]
        if times >= SENTENCE_TIMES:
            return f'it says "{_cut(sentence)}" {times} times'
    words = _words(text)
    runs = Counter(" ".join(words[i : i + RUN_WORDS]) for i in range(len(words) - RUN_WORDS + 1))
    if runs:
        run, times = runs.most_common(1)[0]
        if times >= RUN_TIMES:
            return f'it says "{_cut(run)}" {times} times'
    return None


def unknown_todos(text: str, todo_ids: Collection[str]) -> list[str]:
    """The ToDo ids the text names that are not among `todo_ids`, in order, each once."""
    known = {i.casefold() for i in todo_ids}
    named = dict.fromkeys(f"t{m.group(1)}" for m in _TODO_ID.finditer(text))
    return [i for i in named if i not in known]


def unusable(text: str, *, todo_ids: Collection[str] | None = None) -> str | None:
    """Why `text` cannot be shown as a model's answer, in words; None when it can."""
    if not text.strip():
        return "it is empty"
    if (repeated := repetition(text)) is not None:
        return repeated
    if todo_ids is not None and (made_up := unknown_todos(text, todo_ids)):
        shown = ", ".join(made_up[:5]) + (", …" if len(made_up) > 5 else "")
        return f"it names ToDos the plan does not have ({shown})"
    return None


def _cut(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
