"""Compound requests: several actions in one message, found from the request's structure
without any model (English, German).

A request is cut into clauses at sentence ends, line breaks, bullets, semicolons, commas and
the words that join actions ("and", "then", "after that", "while", "also", "finally"; "und",
"dann", "danach", "anschließend", "außerdem", "sowie"). Quoted text ('Example Movie', "a
message, with commas") is never cut. A clause is an *action* when it asks for something,
whether or not any intent knows that thing:

- after fillers ("please", "can you", "I'd also like to", "bitte", "kannst du"), it opens with
  a verb: one of the lists (:mod:`graph.intents.lexicon`), or a word of a verb's shape: in
  English an unknown word followed by its object ("shred them", "transfer $100"), in German
  a lower-case word followed by one ("schreddere sie") or a word ending in -iere;
- it is a question about the person's things ("what's on", "do I have"; "welche", "habe ich");
- in German, it ends with an infinitive ("den Tisch buchen", "den Film anschauen");
- or it states a want or a need ("I want to …", "I need …"; "ich brauche").

Two or more actions make the request compound. An action *follows* the one before it (it
needs what that one gives: its step waits for the previous action's step) when it is joined
by a word of sequence ("then", "after that", "finally"; "dann", "danach", "anschließend") or
refers back to it ("shred them", "add a reverb to it", "the resulting image", "the result";
"schick es", "daraus", "das Ergebnis"). Names of people ("email him") do not count; actions
joined by "and" or a comma without either cue are left to the planner, which may run them side
by side. A wrong "follows" costs time (two steps in turn), a missing one may run a step on
what is not there yet.

Kept single on purpose:

- one verb with several objects: "find the invoices from March and April", "open Word and
  Excel", "Termin mit Anna und Tom morgen" (the clause after "and" has no verb of its own);
- the content of a reminder: "remind me to buy milk and call Anna" is one reminder (its
  clauses up to "then"/"dann" or a sentence end are what to be reminded of), and German
  zu-infinitives ("Milch zu kaufen und Anna anzurufen") are content, never actions;
- the content of a message: "reply to Martin and tell him the report is ready";
- reporting back: "check my inbox and tell me what's urgent", "... und sag mir Bescheid";
- a subordinate clause after a comma: "find out, when the match starts";
- greetings, thanks and goodbyes around a request: "Hi, good morning!", "Thanks, now open
  Excel" (no verb in "thanks").

:func:`actions` gives the action clauses and whether each only looks; :mod:`graph.intents.
readonly` reads a request's clauses with it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from graph.intents.language import detect_language
from graph.intents.lexicon import (
    DE_FILLERS,
    DE_IMPERATIVES,
    DE_INFINITIVES,
    DE_LOOK_VERBS,
    DE_NOT_INFINITIVES,
    DE_NOT_VERBS,
    DE_NOUN_VERBS,
    DE_VERB_FOLLOWERS,
    EN_FILLERS,
    EN_FOR_NOUNS,
    EN_LOOK_VERBS,
    EN_NOT_VERBS,
    EN_NOUN_FOLLOWERS,
    EN_NOUN_VERBS,
    EN_OBJECT_OPENERS,
    EN_PARTICLES,
    EN_VERBS,
)
from graph.intents.text import MAX_TEXT_CHARS, fold, words, wordset

__all__ = ["Action", "Compound", "actions", "find_compound"]


@dataclass(frozen=True)
class Compound:
    """Why a request counts as several actions."""

    reason: str  # e.g. "3 actions joined by ',', 'and'"
    parts: tuple[str, ...]  # the action clauses as found in the text
    # for each part, whether it follows the one before (the first never does)
    follows: tuple[bool, ...] = ()


@dataclass(frozen=True)
class Action:
    """One action clause of a request."""

    text: str  # as written
    looks: bool  # it only asks to look: a question, a look verb ("find", "zeig"), "tell me"
    joined_by: str | None  # the connector before it; None for the first
    start: int  # where it starts in the request (its first MAX_TEXT_CHARS characters)
    follows: bool = False  # it needs what the action before it gives (the module docstring)


# -- cutting into clauses ---------------------------------------------------------------------

_STRONG_WORDS = (
    r"and then|and after that|and afterwards|and also|and finally|and lastly|and additionally|"
    r"then|after that|after this|afterwards|also|additionally|finally|lastly|meanwhile|while|"
    r"und dann|und danach|und anschlie(?:ß|ss)end|und au(?:ß|ss)erdem|dann|danach|"
    r"anschlie(?:ß|ss)end|au(?:ß|ss)erdem|zudem|sowie|und zus(?:ä|ae)tzlich|zus(?:ä|ae)tzlich|"
    r"und zum schluss|zum schluss|schlie(?:ß|ss)lich|w(?:ä|ae)hrend(?:dessen)?"
)
_SPLIT = re.compile(
    rf"(?P<strong>[.!?;]+(?=\s|$)|\s*\n[\s\-*•\d.)]*|(?:^|\s+|(?<=[\s,]))(?:{_STRONG_WORDS})(?=[\s,]))"
    rf"|(?P<weak>\s*,\s*(?:(?:and|und)\s+)?|\s+(?:and|und|&|plus|as well as)\s+)",
    re.IGNORECASE,
)
# Quoted text: 'Example Movie', "…", “…”, „…“ (an apostrophe inside a word is no quote).
_QUOTED = re.compile(
    r"(?<!\w)'[^'\n]{1,400}?'(?!\w)|\"[^\"\n]{1,400}\"|“[^”\n]{1,400}”|„[^“”\n]{1,400}[“”]"
)
# What quoted text reads as: one neutral word, the same length (positions stay those of the text).
_MASK = "q"

# Joining words that put an action after the one before it.
_SEQUENCE_JOINS = frozenset(
    fold(j)
    for j in (
        "then", "and then", "after that", "and after that", "after this", "afterwards",
        "and afterwards", "finally", "and finally", "lastly", "and lastly",
        "dann", "und dann", "danach", "und danach", "anschließend", "und anschließend",
        "zum schluss", "und zum schluss", "schließlich",
    )
)  # fmt: skip
# Words that point back at what an earlier action gave (English on folded text; German
# "sie" only lower-case: "Sie" is the polite "you").
_EN_BACK = re.compile(
    r"\b(?:it|its|them|their|they|this|these|those|the same|the results?|the outputs?|"
    r"the (?!(?:given|supplied|provided|attached|following|specified|linked|uploaded|"
    r"mentioned|named|selected|original|needed|required|speed|hundred)\b)"
    r"(?:[a-z]{3,}ed|resulting|remaining|matching)(?= [a-z])|"
    r"the (?:stitched|made|written|taken|drawn|done|found|chosen|built|spoken|cut|split|set|"
    r"sent|shown|kept|got|gotten|sung|read)\b)\b"
)
_DE_BACK = re.compile(
    r"\b(?:es|ihn|ihm|ihnen|diese[snmr]?|damit|davon|daraus|darin|dazu|darauf|daf(?:u|ue)r|"
    r"das ergebnis|die ergebnisse|dem ergebnis)\b"
)
_DE_SIE = re.compile(r"(?<!^)(?<![.!?]\s)\bsie\b")


def _follows(clause: _Clause) -> bool:
    """Whether an action clause needs what the action before it gives (module docstring)."""
    if clause.joined_by is not None and fold(clause.joined_by) in _SEQUENCE_JOINS:
        return True
    folded = fold(unicodedata.normalize("NFC", clause.masked))
    return bool(_EN_BACK.search(folded) or _DE_BACK.search(folded) or _DE_SIE.search(clause.masked))


def _masked(text: str) -> str:
    return _QUOTED.sub(
        lambda m: m.group(0)[0] + _MASK * (len(m.group(0)) - 2) + m.group(0)[-1], text
    )


def _quoted(word: str) -> bool:
    """A masked quotation ("watch 'Example Movie'")."""
    return len(word) > 1 and word == _MASK * len(word)


@dataclass(frozen=True)
class _Clause:
    text: str  # as written
    joined_by: str | None  # the connector before it ("and", ",", "then", ...); None at start
    strong: bool  # joined by a sentence end or "then"-like word
    masked: str  # the same clause with quoted text masked
    sentence_start: bool  # it starts a sentence (a capital there says nothing)
    start: int  # its offset in the text


def _clauses(text: str) -> list[_Clause]:
    masked = _masked(text)
    out: list[_Clause] = []
    start = 0
    joined: str | None = None
    strong = True
    sentence = True

    def add(begin: int, end: int) -> bool:
        piece = text[begin:end]
        lead = len(piece) - len(piece.lstrip(" \t-*•"))
        piece = piece.strip(" \t-*•")
        if not piece:
            return False
        at = begin + lead
        out.append(_Clause(piece, joined, strong, masked[at : at + len(piece)], sentence, at))
        return True

    for match in _SPLIT.finditer(masked):
        if add(start, match.start()):
            joined, strong, sentence = None, False, False
        connector = " ".join(match.group(0).split()).lower() or "line break"
        if match.group("strong"):
            strong = True
            if connector[0] in ".!?;" or connector == "line break" or "\n" in match.group(0):
                sentence = True
                joined = "sentence end" if connector[0] in ".!?;" else "line break"
            else:
                joined = connector
        elif joined is None or not strong:
            joined = "," if "," in connector else connector
        start = match.end()
    add(start, len(text))
    return out


def _strip_fillers(tokens: list[str], phrases: tuple[list[str], ...]) -> list[str]:
    changed = True
    while changed and tokens:
        changed = False
        for filler in phrases:
            if tokens[: len(filler)] == filler:
                tokens = tokens[len(filler) :]
                changed = True
                break
    return tokens


# -- English ------------------------------------------------------------------------------

_EN_QUERY = re.compile(
    r"(?:what|what's|whats|which|when|when's|where|where's|who|who's|how many|how much|"
    r"how long|is there|are there|do i|did i|have i|am i|is my|are my|any new|do we|are we)"
    r"(?!\w)"
)
_EN_NEED = re.compile(
    r"(?:i|we) (?:also )?(?:need|want|'d like|would like|require|wish)(?!\w)|i'd like(?!\w)"
)
_EN_REPORT = re.compile(
    r"(?:tell me|let me know|show me|give me|keep me posted|provide me|send me the result|"
    r"report back)(?!\w)"
)
_EN_REMINDER = re.compile(
    r"(?:remind (?:me|us)|don't let me forget|do not let me forget)(?: \w+){0,4}? to(?!\w)"
)
_NUMBER = re.compile(r"[\d$€£]")


def _english_verb(
    tokens: list[str], original: list[str], sentence_start: bool, english: bool
) -> str | None:
    """The verb the clause opens with, if it opens with one (by its shape only in English)."""
    if not tokens:
        return None
    first = tokens[0]
    after = tokens[1] if len(tokens) > 1 else ""
    if first in EN_VERBS:
        if first in EN_NOUN_VERBS:
            if after == "for" and first in EN_FOR_NOUNS:
                return None
            return first if after and after not in EN_NOUN_FOLLOWERS else None
        return first
    if not english or first in EN_NOT_VERBS or not first.isalpha():
        return None
    if first.endswith(("ing", "ed", "ly")):
        return None
    capital = bool(original) and original[0][:1].isupper()
    if capital and not sentence_start:
        return None  # a name in the middle of a sentence: "… and Anna the address"
    if after in EN_OBJECT_OPENERS or _NUMBER.match(after) or _quoted(after):
        return first  # "shred them", "transfer $100", "watch a movie"
    if (
        after in EN_PARTICLES
        and len(tokens) > 2
        and (tokens[2] in EN_OBJECT_OPENERS or _quoted(tokens[2]))
    ):
        return first  # "print out my file"
    return None


# -- German -------------------------------------------------------------------------------

_DE_QUERY = re.compile(
    r"(?:was|welche\w*|wann|wo|wer|wie viele|wieviel\w*|habe? ich|hat \w+|haben wir|"
    r"gibt es|bin ich|ist mein\w*|sind mein\w*)(?!\w)"
)
_DE_NEED = re.compile(r"(?:ich brauche|wir brauchen|ich benoetige)(?!\w)")
_DE_REPORT = re.compile(r"(?:sag mir|zeig mir|gib mir bescheid|sag bescheid|melde dich)(?!\w)")
_DE_REMINDER = re.compile(r"(?:erinner\w* (?:mich|uns)|vergiss nicht)(?!\w)")
# "anzurufen", "aufzuraeumen": a zu-infinitive, what to do, never an action of its own
_DE_SUBJECTS = wordset("ich du er wir ihr man")
_DE_ZU_INFINITIVE = re.compile(
    r"(?:an|auf|aus|ein|mit|nach|vor|ab|zurueck|weg|her|hin|durch|um|zusammen|fest|los)zu\w+en"
)


def _german_verb(
    tokens: list[str], original: list[str], sentence_start: bool, german: bool
) -> str | None:
    """The verb of a German clause: an imperative first or an infinitive last (by their shape
    only in German: "my wallet was stolen" ends in no infinitive)."""
    if not tokens:
        return None
    first = tokens[0]
    after = tokens[1] if len(tokens) > 1 else ""
    lower = bool(original) and original[0][:1].islower()
    if first in DE_IMPERATIVES:
        if first not in DE_NOUN_VERBS or (lower and not sentence_start):
            return first
        if after in DE_VERB_FOLLOWERS:
            return first
    elif german and first not in DE_NOT_VERBS and first.isalpha():
        if first.endswith(("iere", "ier")) and after:
            return first  # "reserviere", "kontaktier"
        if lower and not sentence_start and (after in DE_VERB_FOLLOWERS or _NUMBER.match(after)):
            return first  # "… und schreddere sie"
    # verb last: "den Tisch buchen", "Anna die Adresse schicken (bitte)"
    tail = [t for t in tokens[-3:] if t not in ("bitte", "mal", "noch", "lassen", "koennen")]
    if not tail or len(tokens) < 2:
        return None
    last = tail[-1]
    index = len(tokens) - 1 - tokens[::-1].index(last)
    if tokens[index - 1] == "zu" or _DE_ZU_INFINITIVE.fullmatch(last):
        return None  # "Milch zu kaufen": what to be reminded of, not an action
    if any(t in _DE_SUBJECTS for t in tokens[:index]):
        return None  # "(die Mail,) in der wir uns entschuldigen": a statement, no request
    if last in DE_INFINITIVES:
        return last
    if not german:
        return None
    written = original[index] if len(original) == len(tokens) else ""
    if (
        written[:1].islower()
        and last.endswith(("en", "ern", "eln"))
        and last not in DE_NOT_INFINITIVES
        and last not in DE_NOT_VERBS
        and not last.startswith("ge")
        and len(last) > 4
    ):
        return last  # "die Steuerdateien schreddern"
    return None


# -- one clause ---------------------------------------------------------------------------

_MESSAGE_VERBS = wordset(
    "reply answer respond write email e-mail mail message text send forward "
    "antworte antwort beantworte schreib schreibe mail maile schick schicke sende"
)
_MESSAGE_CONTENT = re.compile(r"(?:tell|say|saying|ask|sag|sage|frag|frage)(?!\w)")
# A clause after a bare comma that opens like this is subordinate ("find out, when ...",
# "eine Mail, in der wir ...").
_SUBORDINATE = re.compile(
    r"(?:what|what's|when|where|who|how|which|whether|if|that|was|wann|wo|wer|wie|welche\w*|"
    r"ob|dass|weil|wenn|deren|dessen|denen|"
    r"(?:in|mit|an|auf|fuer|von|zu|bei|aus|nach|ueber|unter|um) "
    r"(?:der|die|das|dem|den|denen|welche\w*))(?!\w)"
)
# A clause inside a reminder's content that names a list or calendar of its own is an action
# of its own: "remind me to call the bank and add 'pay rent' to my to-do list".
_OWN_TARGET = re.compile(
    r"(?:to|on|in|into) (?:my|the) (?:to-?do|todo|task|shopping)?(?: ?list|calendar)\b|"
    r"(?:auf|in) (?:die|meine|den|meinen) (?:to-?do-?|einkaufs|aufgaben)?(?:liste|kalender)\b"
)
_TEXT_GREETING = re.compile(
    r"(?:how are you|how's it going|what's up|wie geht'?s|wie geht es|was geht)(?!\w)"
)


@dataclass(frozen=True)
class _Reading:
    action: bool
    looks: bool  # a question, or a verb that only looks
    report: bool  # "tell me ...": reports back on the action before it
    reminder: bool  # "remind me to ...": the clauses after it are its content
    message: bool  # "reply to Martin": "and tell him ..." after it is what to write
    content: bool  # "tell him ...", "sag ihr ...": what to write, after a message verb
    subordinate: bool  # "when ...", "ob ...": part of the clause before a comma


_LOOK_VERBS = EN_LOOK_VERBS | DE_LOOK_VERBS
_NOTHING = _Reading(False, False, False, False, False, False, False)


def _read(clause: _Clause, language: str) -> _Reading:
    original = words(unicodedata.normalize("NFC", clause.masked))
    folded = fold(unicodedata.normalize("NFC", clause.masked))
    tokens = words(folded)
    if _TEXT_GREETING.search(folded) or not tokens:
        return _NOTHING
    en = _strip_fillers(list(tokens), EN_FILLERS)
    de = _strip_fillers(list(tokens), DE_FILLERS)
    en_head, de_head = " ".join(en), " ".join(de)
    aligned = len(original) == len(tokens)
    en_original = original[len(tokens) - len(en) :] if aligned else []
    de_original = original[len(tokens) - len(de) :] if aligned else []
    # after a filler, the first word no longer starts the sentence ("please Call …" is rare)
    en_start = clause.sentence_start and len(en) == len(tokens)
    de_start = clause.sentence_start and len(de) == len(tokens)
    report = bool(_EN_REPORT.match(en_head) or _DE_REPORT.match(de_head))
    reminder = bool(_EN_REMINDER.match(en_head) or _DE_REMINDER.match(de_head))
    question = bool(_EN_QUERY.match(en_head) or _DE_QUERY.match(de_head))
    need = bool(_EN_NEED.match(en_head) or _DE_NEED.match(de_head))
    en_verb = _english_verb(en, en_original, en_start, language == "en")
    de_verb = _german_verb(de, de_original, de_start, language == "de")
    action = report or question or need or en_verb is not None or de_verb is not None
    if need:
        # "I want to find …": what follows the want says whether it only looks
        rest = re.sub(r"^.*?(?:need|want|like|require|wish)(?: to)? ?", "", en_head)
        rest_tokens = rest.split()
        looks = bool(rest_tokens) and rest_tokens[0] in EN_LOOK_VERBS
    else:
        looks = question or report or (en_verb or de_verb or "") in _LOOK_VERBS
    return _Reading(
        action=action,
        looks=looks,
        report=report,
        reminder=reminder,
        message=bool(en and en[0] in _MESSAGE_VERBS) or bool(de and de[0] in _MESSAGE_VERBS),
        content=bool(_MESSAGE_CONTENT.match(en_head) or _MESSAGE_CONTENT.match(de_head)),
        subordinate=bool(_SUBORDINATE.match(folded)),
    )


def actions(text: str) -> list[Action]:
    """The request's action clauses, in order (see the module docstring)."""
    text = unicodedata.normalize("NFC", text[:MAX_TEXT_CHARS])
    language = detect_language(text)
    found: list[Action] = []
    in_reminder = in_message = False
    for clause in _clauses(text):
        if in_reminder and not clause.strong and not _OWN_TARGET.search(fold(clause.masked)):
            continue  # "remind me to buy milk and call Anna": one reminder
        reading = _read(clause, language)
        in_reminder = reading.reminder or (in_reminder and not clause.strong)
        if in_message and not clause.strong and reading.content:
            continue  # "reply to Martin and tell him the report is ready": one reply
        in_message = reading.message or (in_message and not clause.strong)
        if reading.subordinate and clause.joined_by == ",":
            continue  # "find out online, when the match starts"
        if not reading.action or (reading.report and found):
            continue
        follows = bool(found) and _follows(clause)
        found.append(Action(clause.text, reading.looks, clause.joined_by, clause.start, follows))
    return found


def find_compound(text: str, abstain: re.Pattern[str] | None = None) -> Compound | None:
    """The actions of a request when there are two or more; None for one action or none.

    ``abstain``: the registry's abstain patterns (folded, any match = several actions).
    """
    found = actions(text)
    if len(found) >= 2:
        joins = dict.fromkeys(a.joined_by for a in found[1:] if a.joined_by)
        how = ", ".join(
            f"'{j}'" if j not in ("sentence end", "line break") else "sentences" for j in joins
        )
        return Compound(
            f"{len(found)} actions joined by {how or 'juxtaposition'}",
            tuple(a.text for a in found),
            tuple(a.follows for a in found),
        )
    if abstain is not None:
        match = abstain.search(fold(text[:MAX_TEXT_CHARS]))
        if match is not None:
            return Compound(
                f"{match.group(0)!r} matches an abstain pattern", (text.strip(),), (False,)
            )
    return None
