"""Compound detection: several actions in one request, found without an LLM (EN and DE).

The counter-examples matter as much: one action with an "and" inside it, a reminder's
content, a reply's content, greetings around a request, report-backs ("and tell me").
"""

from __future__ import annotations

import re

import pytest

from graph.intents import IntentRegistry, actions, find_compound

SEVERAL: list[tuple[str, int]] = [
    # English
    ("Find a free slot with Tom next week, book it and email him the agenda", 3),
    ("book a table, then send Anna the address and set an alarm", 3),
    ("Open Outlook and reply to Tom", 2),
    ("Find the file and email it to Tom", 2),
    ("Hi, can you send the report to Tom and put a meeting in my calendar?", 2),
    ("What's on my calendar tomorrow? Also, do I have new emails?", 2),
    ("Schedule a meeting with Anna and Tom and book a room", 2),
    ("Move my 2pm meeting to Thursday and let Anna know", 2),
    ("Remind me to buy milk, then email Tom the report", 2),
    ("Search online for flights to Rome and book the cheapest one", 2),
    ("1. Check my inbox\n2. Open Excel\n3. Mute Slack", 3),
    ("Reply to Anna. After that, archive the thread", 2),
    # German
    ("buch den Tisch und schick Anna die Adresse", 2),
    ("Kannst du den Tisch buchen und Anna die Adresse schicken?", 2),
    ("Den Tisch buchen und Anna die Adresse schicken", 2),
    ("Öffne Excel und erstelle eine neue Tabelle", 2),
    ("Lösche die alten PDFs und leere den Papierkorb", 2),
    ("Erinnere mich an den Zahnarzt. Außerdem schreib Tom eine Mail.", 2),
    ("Verschiebe das Meeting auf Freitag, lade Petra ein und buche einen Raum", 3),
    ("Wann ist mein nächster Termin und habe ich neue Mails?", 2),
    ("Schau nach dem Wetter, anschließend buch Tickets", 2),
    ("Setz Eier auf die Liste und schau, ob Ben geantwortet hat", 2),
    ("Such die Datei, danach schick sie an Paul", 2),
]

SINGLE: list[str] = [
    # one verb, several objects
    "find the invoices from March and April",
    "Open Word and Excel",
    "Send the report to Anna and Tom",
    "Add milk and eggs to my shopping list",
    "Search online for flights to Rome and hotels near the Colosseum",
    "Check my calendar and email",
    "Such die Rechnungen von März und April",
    "Termin mit Anna und Tom morgen",
    "Öffne Word und Excel",
    "Schick den Bericht an Anna und Tom",
    # a reminder's content, a reply's content
    "Remind me to buy milk and call Anna",
    "Erinnere mich morgen, Milch zu kaufen und Anna anzurufen",
    "Reply to Martin and tell him the report is ready",
    "Add a task: call the plumber",
    # reporting back
    "Check my inbox and tell me what's urgent",
    "Schick Anna die Präsentation und sag mir Bescheid",
    "Geh meine Mails durch und sag mir, was eine Antwort braucht",
    # a subordinate clause after a comma
    "Finde online heraus, wann das Spiel heute Abend anfängt",
    # greetings, thanks, goodbyes around or instead of a request
    "Hi, good morning!",
    "Hallo, guten Morgen!",
    "Danke und tschüss",
    "Thanks a lot, bye",
    "Hey there, how are you?",
    "Thanks, now open Excel",
    "Hallo, öffne bitte Outlook",
    # single requests
    "I need a reminder to water the plants",
    "Book a flight to Berlin",
    "Wie wird das Wetter morgen?",
    "",
    "und und und",
]


@pytest.mark.parametrize(("text", "actions"), SEVERAL)
def test_several_actions_are_found(text: str, actions: int) -> None:
    found = find_compound(text)
    assert found is not None, text
    assert len(found.parts) == actions, found
    # the parts are the clauses as written, in order
    positions = [text.find(part) for part in found.parts]
    assert all(p >= 0 for p in positions) and positions == sorted(positions)
    assert re.fullmatch(rf"{actions} actions joined by .+", found.reason), found.reason


@pytest.mark.parametrize("text", SINGLE)
def test_one_action_is_not_compound(text: str) -> None:
    assert find_compound(text) is None


def test_reason_names_the_connectors() -> None:
    found = find_compound("Book a table, then send Anna the address and set an alarm")
    assert found is not None
    assert found.reason == "3 actions joined by 'then', 'and'"
    assert found.parts == ("Book a table", "send Anna the address", "set an alarm")
    sentences = find_compound("Check my inbox. Open Excel.")
    assert sentences is not None and sentences.reason == "2 actions joined by sentences"


def test_abstain_patterns_are_one_input() -> None:
    # a registry may still name patterns that mean "several actions"
    pattern = re.compile(r"(?<!\w)(?:plus\s+\w+)(?!\w)")
    found = find_compound("open Excel plus Word", pattern)
    assert found is not None and "abstain pattern" in found.reason


def test_a_compound_request_is_never_decided() -> None:
    registry = IntentRegistry.load()
    for text, _ in SEVERAL:
        decision = registry.decide(text)
        assert decision.intent is None, decision.describe()
        assert decision.tier is None and decision.rule is None
        assert decision.compound is not None
        assert decision.confidence == 0.0
    # the rules alone would have picked app_control here
    decision = registry.explain("Öffne Excel und erstelle eine neue Tabelle")
    assert decision.scores["app_control"] >= registry.min_confidence
    assert "compound: 2 actions joined by 'und'" in decision.describe()


def test_hints_name_the_intents_of_the_parts_best_first() -> None:
    registry = IntentRegistry.load()
    decision = registry.decide("Find the contract and email it to my lawyer")
    assert decision.hints[:2] == ("files", "email")
    decision = registry.decide("Schau in meinen Kalender, dann schreib Ben eine Mail")
    assert {"calendar", "email"} <= set(decision.hints)


# -- the open world: actions no intent knows ------------------------------------------------

OPEN_WORLD: list[tuple[str, int]] = [
    (
        "I want to print out my example.pdf, transfer $100 to my friend's account at Bank of "
        "Example, and watch a movie named 'Example Movie' afterwards",
        3,
    ),
    ("Find my tax files and shred them", 2),
    ("Finde meine Steuerdateien und schreddere sie", 2),
    ("Sell my old bike on eBay and transfer the money to my savings account", 2),
    ("Order groceries for the week and have them delivered on Friday morning", 2),
    ("Check my to-do list and tick off 'call the plumber'", 2),
    ("Überweise Jonas 50 Euro und erinnere mich, ihn nach den Karten zu fragen", 2),
    ("Remind me to call the bank at 9 and add 'pay rent' to my to-do list", 2),
]
OPEN_WORLD_SINGLE: list[str] = [
    # quoted text is never cut
    'Send an SMS to Tom saying "I am late, start without me and order the pizza"',
    "Text Tom the message 'running late, start without me and order the pizza'",
    "Buy bread and butter on the way home",
    "Check my calendar and email for anything from Sophie",
    "Block my credit card, my wallet was stolen",
    "Entwirf eine Mail an den Kunden, in der wir uns für die Verspätung entschuldigen",
]


@pytest.mark.parametrize(("text", "count"), OPEN_WORLD)
def test_actions_outside_every_intent_count(text: str, count: int) -> None:
    found = find_compound(text)
    assert found is not None and len(found.parts) == count, found


@pytest.mark.parametrize("text", OPEN_WORLD_SINGLE)
def test_one_open_world_action_stays_single(text: str) -> None:
    assert find_compound(text) is None


def test_the_actions_say_which_only_look() -> None:
    found = actions("Find my tax files and shred them")
    assert [(a.text, a.looks) for a in found] == [
        ("Find my tax files", True),
        ("shred them", False),
    ]
    assert found[1].start == len("Find my tax files and ")


FOLLOWS: list[tuple[str, tuple[bool, ...]]] = [
    # referring back to what the action before gives
    ("Find my tax files and shred them", (False, True)),
    ("Find the file and email it to Tom", (False, True)),
    ("Make a picture of a lake and colorize the generated image", (False, True)),
    ("Finde das Dokument und druck es aus", (False, True)),
    ("Such die Datei, danach schick sie an Paul", (False, True)),
    # words of sequence
    ("Reply to Anna. After that, archive the thread", (False, True)),
    ("Extract the audio from example.mp4, then add a reverb", (False, True)),
    ("Schau nach dem Wetter, anschließend buch Tickets", (False, True)),
    # side by side: nothing says the second needs the first
    ("Check the weather and send Anna a note", (False, False)),
    ("Schedule a meeting with Tom on Friday and email him the agenda", (False, False)),
    ("Öffne Excel und erstelle eine neue Tabelle", (False, False)),
    ("Check the morning news and book the meeting room", (False, False)),
    ("Summarize 'it is what it is' and translate the given text", (False, False)),
    ("buch den Tisch und schick Anna die Adresse", (False, False)),
]


@pytest.mark.parametrize(("text", "follows"), FOLLOWS)
def test_an_action_follows_the_one_before_when_it_refers_back_or_comes_next(
    text: str, follows: tuple[bool, ...]
) -> None:
    found = find_compound(text)
    assert found is not None and found.follows == follows, found
    assert [a.follows for a in actions(text)] == list(follows)
