"""Compound requests: several actions in one message, found without an LLM (English, German).

A request is cut into clauses at sentence ends, line breaks, bullets, commas and the words
that join actions ("and", "then", "after that", "also"; "und", "dann", "danach",
"anschließend", "außerdem", "sowie"). A clause is an *action* when it asks for something:

- it starts, after fillers ("please", "can you", "also", "bitte", "kannst du", ...), with an
  imperative ("book", "send", "schick", "buch") or a question about the person's things
  ("what's on", "do I have", "welche", "habe ich");
- in German, or it ends with an infinitive ("den Tisch buchen", "Anna die Adresse schicken");
- or it states a need ("I need", "ich brauche").

Two or more actions make the request compound. Kept single on purpose:

- one verb with several objects: "find the invoices from March and April", "open Word and
  Excel", "Termin mit Anna und Tom morgen" (the clause after "and" has no verb of its own);
- the content of a reminder: "remind me to buy milk and call Anna" is one reminder (its
  clauses up to "then"/"dann" or a sentence end are what to be reminded of), and German
  zu-infinitives ("Milch zu kaufen und Anna anzurufen") are content, never actions;
- reporting back: "check my inbox and tell me what's urgent", "... und sag mir Bescheid";
- greetings, thanks and goodbyes around a request: "Hi, good morning!", "Danke und tschüss",
  "Thanks, now open Excel" (no verb in "thanks").

Verbs that are also nouns ("book", "email", "call"; "Buch", "Plan") count at a clause's
start only when something follows that a verb takes (an article, a pronoun, a name).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from graph.intents.text import fold, words, wordset

__all__ = ["Compound", "find_compound"]


@dataclass(frozen=True)
class Compound:
    """Why a request counts as several actions."""

    reason: str  # e.g. "3 actions joined by ',', 'and'"
    parts: tuple[str, ...]  # the action clauses as found in the text


# -- cutting into clauses ---------------------------------------------------------------------

_STRONG_WORDS = (
    r"and then|and after that|and afterwards|and also|then|after that|afterwards|also|"
    r"und dann|und danach|und anschlie(?:ß|ss)end|und au(?:ß|ss)erdem|dann|danach|"
    r"anschlie(?:ß|ss)end|au(?:ß|ss)erdem|zudem|sowie|und zus(?:ä|ae)tzlich"
)
_SPLIT = re.compile(
    rf"(?P<strong>[.!?;]+(?=\s|$)|\s*\n[\s\-*•\d.)]*|(?:^|\s+|(?<=[\s,]))(?:{_STRONG_WORDS})(?=\s))"
    rf"|(?P<weak>\s*,\s*(?:(?:and|und)\s+)?|\s+(?:and|und|&|plus)\s+)",
    re.IGNORECASE,
)

# -- English ------------------------------------------------------------------------------


def _fillers(text: str) -> tuple[list[str], ...]:
    """Filler phrases ("|"-separated) as word lists, longest first."""
    phrases = [p.split() for p in " ".join(text.split()).split("|")]
    return tuple(sorted((p for p in phrases if p), key=lambda p: -len(p)))


_EN_FILLERS = _fillers(
    """please|pls|kindly|also|then|and|now|just|quickly|finally|first|firstly|second|
        secondly|next|lastly|afterwards|ok|okay|oh|so|but|hey|hi|hello|thanks|right|great|
        can you|could you|would you|will you|can u|could u|you can|you could|
        can you please|could you please|would you please|
        i need you to|i want you to|i'd like you to|i would like you to|go ahead and|
        i need to|i want to|i'd like to|i would like to|i have to|we need to|we have to|
        let's|lets|let us|i'll|i will|we'll|help me|make sure to|don't forget to|remember to|
        try to|also please|then please|and please|maybe|for me"""
)
_EN_VERBS = wordset(
    """
    add archive arrange ask block book buy calculate call cancel change check clean close
    compare compose confirm convert copy create decline delete download draft drop edit email
    e-mail empty enter export fetch file fill find fix forward get give google grab invite
    launch list locate look mail make mark message move mute notify open order organise
    organize pause pay pick ping plan play post postpone prepare print push put quit read
    record remind remove rename reply reschedule reserve respond restart resume run save
    schedule search send set share show skip sort start stop summarise summarize switch take
    tell text tidy track translate turn unmute update upload write zip note jot let leave
    accept attach backup buy download forward unzip translate look check
    """
)
# Also nouns: a verb only when what follows is what a verb takes.
_EN_NOUN_VERBS = wordset(
    "book call email e-mail mail text list file message order note plan play search check "
    "set show post print record start stop update backup block track drop pick"
)
_EN_NOUN_FOLLOWERS = wordset(
    "with of from notes address addresses thread threads invite invites club title account "
    "is was are list lists history"
)
_EN_QUERY = re.compile(
    r"(?:what|what's|whats|which|when|where|who|how many|how much|is there|are there|"
    r"do i|did i|have i|am i|is my|are my|any new|do we|are we)(?!\w)"
)
_EN_NEED = re.compile(r"(?:i|we) (?:need|want|'d like|would like)(?!\w)|i'd like(?!\w)")
_EN_REPORT = re.compile(r"(?:tell me|let me know|show me|give me|keep me posted)(?!\w)")
_EN_REMINDER = re.compile(
    r"(?:remind (?:me|us)|don't let me forget|do not let me forget)(?: \w+){0,4}? to(?!\w)"
)

# -- German -------------------------------------------------------------------------------

_DE_FILLERS = _fillers(
    """bitte|auch|noch|dann|danach|mal|doch|und|zuerst|erst|anschliessend|ausserdem|
        sowie|zudem|jetzt|nun|schnell|gleich|ok|okay|also|hey|hallo|hi|danke|gut|super|
        kannst du|koenntest du|wuerdest du|kannst du bitte|koenntest du bitte|
        kannst du mir|koenntest du mir|bitte noch|bitte auch|ich moechte|ich will|ich muss|
        ich wuerde gern|ich wuerde gerne|ich brauche|wir muessen|wir wollen|du kannst|
        du koenntest|und bitte|dann bitte|mir|uns|ausserdem noch|vergiss nicht"""
)
_DE_IMPERATIVES = wordset(
    """
    buch buche schick schicke send sende schreib schreibe erinner erinnere oeffne oeffnen
    mach mache leg lege erstell erstelle loesch loesche verschieb verschiebe such suche find
    finde trag trage setz setze plan plane sag sage lad lade ruf rufe bestell bestelle kauf
    kaufe reservier reserviere pruef pruefe check checke schau schaue zeig zeige lies fass
    fasse antworte antwort beantworte leit leite kopier kopiere benenn benenne sortier
    sortiere raeum raeume start starte schliess schliesse beende beend spiel spiele stell
    stelle dreh drehe notier notiere recherchier recherchiere googel google googel
    ueberweis ueberweise bezahl bezahle druck drucke speicher speichere teil teile informier
    informiere frag frage uebersetz uebersetze berechne entfern entferne fueg fuege nimm
    streich streiche hak hake vereinbar vereinbare organisier organisiere archivier
    archiviere verschick verschicke besorg besorge hol hole pack packe aktualisier
    aktualisiere lade leg melde meld erledige erledig gib leer leere blockier blockiere
    sag sage trage zieh ziehe lad verschieb benachrichtige schalte schalt mute oeffne
    exportier exportiere importier importiere lade markier markiere merk merke
    """
)
_DE_NOUN_VERBS = wordset("buch plan druck start check ruf spiel teil frage")
_DE_VERB_FOLLOWERS = wordset(
    """den die das dem der einen eine ein einem mir uns ihm ihr ihnen es sie bitte mal noch
    doch auch meinen meine mein meinem deinen alle allen fuer an auf in ab zu um"""
)
_DE_INFINITIVES = wordset(
    """
    buchen schicken senden schreiben erinnern eintragen anlegen erstellen loeschen
    verschieben suchen finden oeffnen schliessen absagen einladen planen vereinbaren
    bestellen kaufen reservieren pruefen checken zeigen lesen vorlesen zusammenfassen
    beantworten weiterleiten kopieren umbenennen sortieren aufraeumen starten beenden
    spielen stellen notieren googeln recherchieren nachschauen nachsehen ueberweisen
    bezahlen drucken speichern teilen herunterladen hochladen informieren fragen
    uebersetzen berechnen entfernen hinzufuegen setzen machen legen abhaken streichen
    nehmen anrufen verschicken abschicken organisieren archivieren besorgen holen
    aktualisieren erledigen eintragen verschieben mailen abonnieren kuendigen
    """
)
_DE_QUERY = re.compile(
    r"(?:was|welche\w*|wann|wo|wer|wie viele|wieviel\w*|habe? ich|hat \w+|haben wir|"
    r"gibt es|bin ich|ist mein\w*|sind mein\w*)(?!\w)"
)
_DE_NEED = re.compile(r"(?:ich brauche|wir brauchen|ich benoetige)(?!\w)")
_DE_REPORT = re.compile(r"(?:sag mir|zeig mir|gib mir bescheid|sag bescheid|melde dich)(?!\w)")
_DE_REMINDER = re.compile(r"(?:erinner\w* (?:mich|uns)|vergiss nicht)(?!\w)")

# A clause after a bare comma that opens like this is subordinate ("find out, when ..."):
# part of the clause before it, not an action of its own.
_SUBORDINATE = re.compile(
    r"(?:what|what's|when|where|who|how|which|whether|if|that|was|wann|wo|wer|wie|welche\w*|"
    r"ob|dass|weil|wenn)(?!\w)"
)
# Verbs whose following clauses ("reply to Martin and tell him ...") say what to write.
_MESSAGE_VERBS = wordset(
    "reply answer respond write email e-mail mail message text send forward "
    "antworte antwort beantworte schreib schreibe mail maile schick schicke sende"
)
_MESSAGE_CONTENT = re.compile(r"(?:tell|say|saying|ask|sag|sage|frag|frage)(?!\w)")

_TEXT_GREETING = re.compile(
    r"(?:how are you|how's it going|what's up|wie geht'?s|wie geht es|was geht)(?!\w)"
)


@dataclass(frozen=True)
class _Clause:
    text: str  # as written
    joined_by: str | None  # the connector before it ("and", ",", "then", ...); None at start
    strong: bool  # joined by a sentence end or "then"-like word


def _clauses(text: str) -> list[_Clause]:
    out: list[_Clause] = []
    start = 0
    joined: str | None = None
    strong = True
    for match in _SPLIT.finditer(text):
        piece = text[start : match.start()].strip(" \t-*•")
        if piece:
            out.append(_Clause(piece, joined, strong))
            joined, strong = None, False
        connector = " ".join(match.group(0).split()).lower() or "line break"
        if match.group("strong"):
            strong = True
            joined = "sentence end" if connector[0] in ".!?;" else connector
        elif joined is None or not strong:
            joined = "," if "," in connector else connector
        start = match.end()
    piece = text[start:].strip(" \t-*•")
    if piece:
        out.append(_Clause(piece, joined, strong))
    return out


def _strip_fillers(tokens: list[str], fillers: tuple[list[str], ...]) -> list[str]:
    changed = True
    while changed and tokens:
        changed = False
        for filler in fillers:
            if tokens[: len(filler)] == filler:
                tokens = tokens[len(filler) :]
                changed = True
                break
    return tokens


def _english_action(tokens: list[str], head: str) -> bool:
    if _EN_QUERY.match(head) or _EN_NEED.match(head):
        return True
    if not tokens or tokens[0] not in _EN_VERBS:
        return False
    if tokens[0] in _EN_NOUN_VERBS:
        return len(tokens) > 1 and tokens[1] not in _EN_NOUN_FOLLOWERS
    return True


def _german_action(tokens: list[str], head: str, first_lower: bool) -> bool:
    """``first_lower``: the first word is written in lower case (so not a German noun)."""
    if _DE_QUERY.match(head) or _DE_NEED.match(head):
        return True
    if tokens and tokens[0] in _DE_IMPERATIVES:
        if tokens[0] not in _DE_NOUN_VERBS or first_lower:
            return True
        if len(tokens) > 1 and tokens[1] in _DE_VERB_FOLLOWERS:
            return True
    # verb last: "den Tisch buchen", "Anna die Adresse schicken (bitte)"
    tail = [t for t in tokens[-3:] if t not in ("bitte", "mal", "noch", "lassen", "koennen")]
    if tail and tail[-1] in _DE_INFINITIVES and len(tokens) > 1:
        before = tokens[tokens.index(tail[-1], max(0, len(tokens) - 3)) - 1]
        return before != "zu"  # "Milch zu kaufen": what to be reminded of, not an action
    return False


@dataclass(frozen=True)
class _Reading:
    action: bool
    report: bool  # "tell me ...": reports back on the action before it
    reminder: bool  # "remind me to ...": the clauses after it are its content
    message: bool  # "reply to Martin": "and tell him ..." after it is what to write
    content: bool  # "tell him ...", "sag ihr ...": what to write, after a message verb
    subordinate: bool  # "when ...", "ob ...": part of the clause before a comma


def _read(clause: str) -> _Reading:
    original = words(unicodedata.normalize("NFC", clause))
    folded = fold(unicodedata.normalize("NFC", clause))
    tokens = words(folded)
    if _TEXT_GREETING.search(folded) or not tokens:
        return _Reading(False, False, False, False, False, False)
    en = _strip_fillers(list(tokens), _EN_FILLERS)
    de = _strip_fillers(list(tokens), _DE_FILLERS)
    en_head, de_head = " ".join(en), " ".join(de)
    de_first = original[len(tokens) - len(de)] if de and len(original) == len(tokens) else ""
    report = bool(_EN_REPORT.match(en_head) or _DE_REPORT.match(de_head))
    reminder = bool(_EN_REMINDER.match(en_head) or _DE_REMINDER.match(de_head))
    action = (
        report or _english_action(en, en_head) or _german_action(de, de_head, de_first.islower())
    )
    return _Reading(
        action=action,
        report=report,
        reminder=reminder,
        message=bool(en and en[0] in _MESSAGE_VERBS) or bool(de and de[0] in _MESSAGE_VERBS),
        content=bool(_MESSAGE_CONTENT.match(en_head) or _MESSAGE_CONTENT.match(de_head)),
        subordinate=bool(_SUBORDINATE.match(folded)),
    )


def find_compound(text: str, abstain: re.Pattern[str] | None = None) -> Compound | None:
    """The actions of a request when there are two or more; None for one action or none.

    ``abstain``: the registry's abstain patterns (folded, any match = several actions).
    """
    text = unicodedata.normalize("NFC", text[:1000])
    actions: list[_Clause] = []
    in_reminder = in_message = False
    for clause in _clauses(text):
        if in_reminder and not clause.strong:
            continue  # "remind me to buy milk and call Anna": one reminder
        reading = _read(clause.text)
        in_reminder = reading.reminder or (in_reminder and not clause.strong)
        if in_message and not clause.strong and reading.content:
            continue  # "reply to Martin and tell him the report is ready": one reply
        in_message = reading.message or (in_message and not clause.strong)
        if reading.subordinate and clause.joined_by == ",":
            continue  # "find out online, when the match starts"
        if not reading.action or (reading.report and actions):
            continue
        actions.append(clause)
    if len(actions) >= 2:
        joins = dict.fromkeys(c.joined_by for c in actions[1:] if c.joined_by)
        how = ", ".join(f"'{j}'" if j != "sentence end" else "sentences" for j in joins)
        return Compound(
            f"{len(actions)} actions joined by {how or 'juxtaposition'}",
            tuple(c.text for c in actions),
        )
    if abstain is not None:
        found = abstain.search(fold(text))
        if found is not None:
            return Compound(f"{found.group(0)!r} matches an abstain pattern", (text.strip(),))
    return None
