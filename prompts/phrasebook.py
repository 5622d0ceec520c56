"""What the planner says without an LLM, in the request's language (English, German).

One table per language, the same keys in each; `phrase(language, key, **values)` fills one in.
"""

from __future__ import annotations

from typing import Any

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "failed": "Sorry, I could not do that: {message}",
        "refused": "Plan not carried out: {reason}",
        "nothing": "I could not find a request in that. {abilities}",
        "abilities": "I can help with: {intents}.",
        "greeting": "Hello! Tell me what to do and I will plan it. {abilities}",
        "done": "done",
        "failed_step": "failed",
        "skipped": "skipped",
        "pending": "not run",
        "earlier_failure": "earlier failure",
        "because_failed": "because {ids} failed",
        "because_failed_many": "because {ids} failed",
        # What an A2A client reads of the conversation (api/a2a/mapping.py).
        "plan": "Plan: {goal}",
        "needs_approval": "needs approval",
        "approve_it": "Approve it? Reply 'yes' or 'no'.",
        "step_done": "{todo} done",
        "step_failed": "failed ({code}): {message}",
        "approved": "approved",
        "refused_because": "refused: {reason}",
    },
    "de": {
        "failed": "Das hat leider nicht geklappt: {message}",
        "refused": "Plan nicht ausgeführt: {reason}",
        "nothing": "Darin habe ich keine Bitte gefunden. {abilities}",
        "abilities": "Ich helfe bei: {intents}.",
        "greeting": "Hallo! Sag mir, was zu tun ist, und ich plane es. {abilities}",
        "done": "erledigt",
        "failed_step": "fehlgeschlagen",
        "skipped": "übersprungen",
        "pending": "nicht ausgeführt",
        "earlier_failure": "frühere Störung",
        "because_failed": "weil {ids} fehlgeschlagen ist",
        "because_failed_many": "weil {ids} fehlgeschlagen sind",
        "plan": "Plan: {goal}",
        "needs_approval": "braucht Zustimmung",
        "approve_it": "Zustimmen? Antworte mit 'ja' oder 'nein'.",
        "step_done": "{todo} erledigt",
        "step_failed": "fehlgeschlagen ({code}): {message}",
        "approved": "zugestimmt",
        "refused_because": "abgelehnt: {reason}",
    },
}


def phrase(language: str, key: str, **values: Any) -> str:
    """One phrase in `language` (English where there is no such language), filled in."""
    table = PHRASES.get(language, PHRASES["en"])
    return table[key].format(**values)
