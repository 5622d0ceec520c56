"""The front door: what each request gets (docs/front-door.md).

    one action, decided without an LLM (the rules, or the local classifier)
        → its intent's plan template (the read-only one for a query), no LLM call;
          an intent without a template for it → the LLM planner, the intent as a hint
    several actions in one request
        → the LLM planner: one plan covering every action, the intents found as hints
    classified by the router model (nothing else decided)
        → `question`, `smalltalk`: answered directly
        → any other intent: the LLM planner with that intent as a hint, never a template
          (the router's choice must not drop the parts of the request it did not name)
        → a task no intent fits: the LLM planner
        → nothing to do: a short answer saying what the planner can do
    `question` and `smalltalk`, whoever decided: answered directly, no plan
    nothing to do (empty, gibberish): a short answer
    no LLM configured and the request needs one: the step that needs it ends the turn with
        one clear message naming the LLM settings (`llm_not_configured`)

`choose_route` is that list as code; the `route` node logs its decision as a LAM `route`
message (target and reason), which the edges out of `route` follow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from graph.intents import IntentRegistry
from graph.state import IntentFound

Target = Literal["template", "planner", "answer"]
#: What the router model may answer besides the registry's intents.
OTHER_TASK = "other_task"
NOTHING_TO_DO = "nothing_to_do"
# Common English and German words: a request with none of them and nothing any tier
# recognised is taken as gibberish ("asdf qwer") when no LLM is there to tell.
# fmt: off
_COMMON_WORDS = frozenset({
    "a", "an", "the", "and", "or", "to", "for", "of", "in", "on", "at", "with", "my", "me", "i",
    "you", "it", "is", "are", "be", "do", "please", "can", "could", "would", "will", "what",
    "when", "where", "who", "how", "why", "which", "this", "that", "there", "here", "from", "by",
    "about", "some", "all", "der", "die", "das", "den", "dem", "des", "ein", "eine", "einen",
    "und", "oder", "zu", "für", "von", "im", "am", "auf", "mit", "mein", "meine", "mir", "mich",
    "ich", "du", "es", "ist", "sind", "bitte", "kannst", "könntest", "wann", "wo", "wer", "wie",
    "warum", "welche", "diese", "dieser", "hier", "dort", "aus", "über", "nach", "alle",
})
# fmt: on
_WORD = re.compile(r"[^\W\d_]{2,}")


@dataclass(frozen=True)
class Route:
    target: Target
    reason: str


def looks_like_nothing(text: str) -> bool:
    """Empty, or no word a person would write (used only when no tier recognised anything)."""
    words = [w.casefold() for w in _WORD.findall(text)]
    return not words or not any(w in _COMMON_WORDS for w in words)


def choose_route(found: IntentFound, registry: IntentRegistry, text: str) -> Route:
    """What this request gets, from what the `intent` step found."""
    name = found.get("intent")
    source = found.get("source")
    spec = registry.intents.get(name) if name else None

    if source == "compound":
        compound = found.get("compound") or {}
        hints = ", ".join(found.get("hints") or []) or "none recognised"
        return Route(
            "planner",
            f"compound: {compound.get('reason', 'several actions')}; one plan covering every "
            f"action (intents seen: {hints})",
        )
    if spec is not None and spec.kind == "answer":
        return Route("answer", f"{name} is answered directly, without a plan")
    if spec is not None and source in ("rules", "classifier"):
        read_only = bool(found.get("read_only"))
        if registry.has_template(
            spec.name, language=found.get("language", "en"), read_only=read_only
        ):
            variant = "read-only template" if read_only else "template"
            who = f"rule {found.get('rule')}" if source == "rules" else "the classifier"
            return Route("template", f"{name}: one action, decided by {who}; its {variant}")
        return Route("planner", f"{name} has no template for this request; planned with the LLM")
    if spec is not None:
        return Route("planner", f"the router model chose {name}: a hint for the planner")
    if found.get("router_error"):
        return Route("planner", "the router model gave no usable answer; planned with the LLM")
    if found.get("choice") == NOTHING_TO_DO:
        return Route("answer", "nothing to do: the router model found no request")
    if found.get("choice") == OTHER_TASK:
        return Route("planner", "a task no intent fits: planned with the LLM")
    if source is None and looks_like_nothing(text):
        return Route("answer", "nothing to do: no request recognised")
    return Route("planner", "no intent decided without an LLM: planned with the LLM")
