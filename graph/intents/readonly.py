"""Read-only requests: the person only asks to look ("what's on my calendar", "habe ich neue
Mails?", "where is the file …"), so the plan must change nothing.

A request is read-only when it opens as a question or with a verb that only looks (show, list,
read, check, find; zeig, lies, prüf, such), names nothing that changes the world (add, book,
send, move, delete, remind; erstell, buch, schick, verschieb, lösch, erinnere), and every
action in it only looks (:func:`graph.intents.compound.actions`): "find my tax files and shred
them" asks for a change in its second action, whatever the verb, so it is not read-only. The
doubtful cases come out *not* read-only: the act template then runs, which asks for approval
before it changes anything.

:func:`look_up_query` is what a read-only step is given: the request up to its first action
that does more than look (all of it for a read-only request), never an instruction to change
anything.
"""

from __future__ import annotations

import re
import unicodedata

from graph.intents.compound import actions
from graph.intents.text import MAX_TEXT_CHARS, fold_request

_FILLERS = (
    r"(?:(?:please|pls|hey|hi|ok|okay|so|and|also|quickly|now|just|can you|could you|"
    r"would you|will you|can u|can i|could i|how can i|i'd like to|i want to|i need to|bitte|"
    r"mal|hallo|hey|kannst du|"
    r"koenntest du|wuerdest du|sag mal|ich moechte|ich will)[\s,]+)*"
)
_LOOK = re.compile(
    _FILLERS + r"(?:what|what's|whats|which|when|when's|where|where's|who|who's|how many|how much|"
    r"how long|is there|are there|any|do i|do we|did i|did \w+|have i|has \w+|am i|are we|"
    r"is (?:my|our|the|\w+)|are (?:my|our|the)|show|list|read|tell me|give me|check|"
    r"look|find|search|locate|see|view|display|"
    r"was|welche\w*|wann|wo|wer|wie viele|wieviel\w*|wie lange|gibt es|habe? ich|haben wir|"
    r"hat \w+|bin ich|ist|sind|zeig\w*|lies|les\w*|liste|pruef\w*|check\w*|schau\w*|"
    r"such\w*|find\w*|sieh|gib mir)(?!\w)"
)
# Anything that changes the world, anywhere in the request: then it is not read-only.
_CHANGE = re.compile(
    # not the nouns and adjectives: "my schedule", "the meeting schedule", "my open to-dos",
    # "the reminders I have set"
    r"(?<!\w)(?:add|adds|create|(?<!my )(?<!the )(?<!meeting )(?<!work )schedule|reschedule|"
    r"book|move|delete|remove|cancel|send|reply|respond|forward|write|draft|compose|"
    r"(?<!have )set|put|rename|copy|organi[sz]e|sort|clean|tidy|archive|zip|unzip|empty|"
    r"invite|remind|forget|mark|update|change|edit|upload|"
    r"download|(?<!still )(?<!is )(?<!are )(?<!my )(?<!the )(?<!all )open|close|quit|"
    r"launch|start|play|pause|turn|order|buy|pay|take|tick|cross|"
    r"clear|accept|decline|share|save|print|install|block|"
    r"erstell\w*|anleg\w*|leg\w*|eintrag\w*|trag\w*|buch|buche|buchen|verschieb\w*|"
    r"loesch\w*|entfern\w*|absag\w*|sag \w+ ab|schick\w*|send\w*|schreib\w*|antwort\w*|"
    r"beantwort\w*|weiterleit\w*|leit\w*|setz\w*|benenn\w*|kopier\w*|sortier\w*|raeum\w*|"
    r"archivier\w*|erinner(?!ung)\w*|plan|plane|planen|vereinbar\w*|lad\w*|einlad\w*|"
    r"oeffne\w*|schliess\w*|start\w*|beend\w*|spiel\w*|stell\w*|bestell\w*|kauf\w*|"
    r"bezahl\w*|markier\w*|aender\w*|hinzufueg\w*|fueg\w*|streich\w*|abhak\w*|hak\w*|nimm|"
    r"nehm\w*|leer\w*|speichere|speichern|teil\w*|hochlad\w*|herunterlad\w*|maile|mailen|"
    r"verschick\w*|ruf\w*|notier\w*)(?!\w)"
)


# What joins a clause to the one before it: dropped with the clause that follows.
_TRAILING_JOIN = re.compile(
    r"[\s,;:\u2013-]*"
    r"(?:\b(?:and|then|and then|after that|also|und|dann|und dann|danach|sowie)\b[\s,]*)*$",
    re.IGNORECASE,
)


def is_read_only(text: str) -> bool:
    """Whether the request only asks to look and changes nothing."""
    folded = fold_request(text)
    if _LOOK.match(folded) is None or _CHANGE.search(folded) is not None:
        return False
    return all(action.looks for action in actions(text))


def look_up_query(text: str) -> str:
    """The look-up a read-only step is given: the request up to its first action that does
    more than look, without the words joining them ("Find my tax files and shred them" →
    "Find my tax files"); empty when the request opens with such an action."""
    text = unicodedata.normalize("NFC", text[:MAX_TEXT_CHARS])
    acting = next((a for a in actions(text) if not a.looks), None)
    if acting is None:
        return text.strip()
    return _TRAILING_JOIN.sub("", text[: acting.start]).strip()
