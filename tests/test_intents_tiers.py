"""The tiers after the rules and what a decision carries: classifier, language, read-only,
smalltalk replies, templates per language and variant, and the effects their steps declare."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from graph.approval import mark_approvals
from graph.builder import default_executors
from graph.config import Settings
from graph.intents import (
    IntentRegistry,
    detect_language,
    is_read_only,
)
from lam.dag import validate_plan
from tests.support.cli_harness import ROOT


@pytest.fixture(scope="module")
def registry() -> IntentRegistry:
    return IntentRegistry.load()


# -- the classifier tier ------------------------------------------------------------------------

# The issue's single-action requests the rules abstain on: the classifier decides them.
ISSUE_REQUESTS = [
    ("I need a reminder to water the plants", "reminder"),
    ("add a dentist appointment to my calendar", "calendar"),
    ("take milk off my to-do list", "reminder"),
    ("Ich brauche eine Erinnerung, die Blumen zu gießen", "reminder"),
]


@pytest.mark.parametrize(("text", "intent"), ISSUE_REQUESTS)
def test_classifier_decides_where_the_rules_abstain(
    registry: IntentRegistry, text: str, intent: str
) -> None:
    decision = registry.explain(text)
    assert decision.scores.get(intent, 0.0) < registry.min_confidence  # not the rules'
    assert (decision.intent, decision.tier, decision.rule) == (intent, "classifier", None)
    assert decision.confidence >= registry.classifier_spec.threshold
    assert decision.classifier[0][0] == intent
    assert f"intent: {intent} (classifier, score {decision.confidence:.2f})" in (
        decision.describe()
    )
    assert decision.to_json_dict()["tier"] == "classifier"


@pytest.mark.parametrize(
    "text",
    ["Book a flight to Berlin", "Order a pizza", "Bestell mir ein Taxi", "asdf qwer zxcv"],
)
def test_out_of_scope_is_not_decided(registry: IntentRegistry, text: str) -> None:
    decision = registry.explain(text)
    assert decision.intent is None and decision.tier is None
    assert decision.classifier  # it was asked, and said no
    assert "the rules abstain" in decision.reason


SMALL = """\
version: 1
classifier: {threshold: 0.5, margin: 0.1}
out_of_scope:
  en: [order a pizza, book a flight, call my mother, turn on the lights, write a poem]
intents:
  - name: plants
    description: Plant care.
    rules:
      - {name: plants.en, language: en, weight: 0.9, patterns: ['water the \\w+']}
    examples:
      en: [water the ficus, give the cactus some water, the plants need watering,
           water my orchids, spray the fern]
  - name: music
    description: Music.
    rules:
      - {name: music.en, language: en, weight: 0.9, patterns: ['play \\w+']}
      - {name: music.en.word, language: en, weight: 0.6, keywords: [playlist]}
    examples:
      en: [put on some jazz, next song please, turn the music up, shuffle my playlist,
           pause the music]
"""


def test_classifier_on_a_registry_of_its_own() -> None:
    small = IntentRegistry.from_text(SMALL)
    assert small.decide("water the roses").tier == "rules"
    decided = small.decide("the ficus needs some water")
    assert (decided.intent, decided.tier) == ("plants", "classifier")
    assert small.decide("order a pizza for me").intent is None
    # the rules saw another intent strongly: the classifier may not decide against it
    rival = small.explain("shuffle the songs on the playlist, the plants need water")
    assert rival.scores["music"] >= small.min_confidence
    assert rival.intent in (None, "music")


def test_a_registry_without_examples_has_no_classifier() -> None:
    text = SMALL.split("    examples:")[0] + "\n"
    small = IntentRegistry.from_text(
        text.replace(
            "out_of_scope:\n  en: [order a pizza, "
            "book a flight, call my mother, turn on the "
            "lights, write a poem]\n",
            "",
        )
    )
    assert small.classifier is None
    assert small.decide("the ficus needs some water").intent is None


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_classifier_trains_only_when_a_request_reaches_it() -> None:
    code = (
        "import sys, json; from cli.main import main; "
        "main(['intents', 'explain', '--json', {text!r}]); "
        "print(json.dumps(['sklearn' in sys.modules, 'langgraph' in sys.modules]))"
    )
    ruled = _python(code.format(text="Remind me to call Anna at 9")).splitlines()
    assert json.loads(ruled[0])["tier"] == "rules"
    assert json.loads(ruled[1]) == [False, False]
    classified = _python(code.format(text="I need a reminder to water the plants")).splitlines()
    assert json.loads(classified[0])["tier"] == "classifier"
    assert json.loads(classified[1]) == [True, False]


# -- language -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Remind me to call Anna tomorrow", "en"),
        ("Erinnere mich morgen an Anna", "de"),
        ("Hi, good morning!", "en"),
        ("Hallo, guten Morgen!", "de"),
        ("Moin moin", "de"),
        ("Danke, tschüss!", "de"),
        ("thanks a lot, bye", "en"),
        ("Schreib eine Mail an Tom", "de"),
        ("Öffne Excel", "de"),
        ("Open Excel", "en"),
        ("Habe ich neue Mails?", "de"),
        ("What's on my calendar?", "en"),
        ("12345", "en"),
        ("", "en"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


# -- read-only requests ------------------------------------------------------------------------

READ_ONLY = [
    ("What's on my calendar tomorrow?", "calendar"),
    ("Do I have meetings today?", "calendar"),
    ("Welche Erinnerungen habe ich?", "reminder"),
    ("What's on my todo list?", "reminder"),
    ("Where is the file report.pdf?", "files"),
    ("Habe ich neue Mails?", "email"),
]


@pytest.mark.parametrize(("text", "intent"), READ_ONLY)
def test_read_only_requests_get_plans_that_change_nothing(
    registry: IntentRegistry, text: str, intent: str
) -> None:
    executors = default_executors(Settings(), entry_points=False)
    decision = registry.decide(text)
    assert (decision.intent, decision.read_only) == (intent, True)
    filled = registry.template_for(
        intent, text, language=decision.language, read_only=decision.read_only
    )
    assert filled is not None
    assert validate_plan(filled.plan, executors=executors.names()) == []
    assert {filled.effects[t.id] for t in filled.plan.todos} <= {"read", "none"}
    marked = mark_approvals(filled.plan, executors, declared=filled.effects)
    assert not any(t.requires_approval for t in marked.todos)  # nothing to approve


@pytest.mark.parametrize(
    "text",
    [
        "Schedule a meeting with Anna",
        "Take milk off my to-do list",
        "Add a dentist appointment to my calendar",
        "Delete all files in my Documents folder",
        "Remind me what is on my calendar",
        "Lösch die Datei entwurf.docx",
        "Trag den Termin am Montag ein",
    ],
)
def test_requests_that_change_something_are_not_read_only(text: str) -> None:
    assert not is_read_only(text)


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Delete all files in my Documents folder", "files"),
        ("Lösche alle Dateien in meinem Dokumente-Ordner", "files"),
        ("Close Chrome", "app_control"),
        ("Schedule a meeting with Anna on Friday", "calendar"),
        ("Remind me to call mom at 6", "reminder"),
    ],
)
def test_act_templates_that_change_things_need_approval(
    registry: IntentRegistry, text: str, intent: str
) -> None:
    executors = default_executors(Settings(), entry_points=False)
    decision = registry.decide(text)
    assert decision.intent == intent and not decision.read_only
    filled = registry.template_for(intent, text, language=decision.language, read_only=False)
    assert filled is not None
    marked = mark_approvals(filled.plan, executors, declared=filled.effects)
    changing = [t for t in marked.todos if filled.effects[t.id] not in ("none", "read")]
    assert changing and all(t.requires_approval for t in changing)


def test_every_packaged_template_step_declares_its_effect(registry: IntentRegistry) -> None:
    for spec in registry.intents.values():
        for variant, versions in spec.templates.items():
            for language, template in versions.items():
                ids = [todo["id"] for todo in template.plan["todos"]]
                assert set(template.effects) == set(ids), (spec.name, variant, language)
                assert all(todo["executor"] != "llm" for todo in template.plan["todos"])


# -- templates per language and variant --------------------------------------------------------


def test_templates_come_in_the_requests_language(registry: IntentRegistry) -> None:
    en = registry.template_for("calendar", "Schedule a call", language="en", read_only=False)
    de = registry.template_for("calendar", "Plane ein Telefonat", language="de", read_only=False)
    assert en is not None and de is not None
    assert [t.title for t in en.plan.todos] == [
        "Check availability in the calendar",
        "Create the calendar event",
    ]
    assert [t.title for t in de.plan.todos] == [
        "Verfügbarkeit im Kalender prüfen",
        "Termin im Kalender eintragen",
    ]
    assert de.plan.goal == "Kalender: Plane ein Telefonat"
    assert de.effects == {"t1": "read", "t2": "book"}
    # a language the registry has no template in gets the English one
    fr = registry.template_for("calendar", "Planifie", language="fr", read_only=False)
    assert fr is not None and fr.plan.todos[0].title == en.plan.todos[0].title


def test_email_has_a_read_template_and_no_act_template(registry: IntentRegistry) -> None:
    assert registry.template_for("email", "Write to Tom", language="en", read_only=False) is None
    read = registry.template_for("email", "Any new mail?", language="en", read_only=True)
    assert read is not None and read.plan.todos[0].title == "Check the mailbox"


def test_no_template_for_a_read_request_whose_template_changes_things(
    registry: IntentRegistry,
) -> None:
    # app_control has only an act template, and it changes things
    assert (
        registry.template_for("app_control", "Is Excel open?", language="en", read_only=True)
        is None
    )
    assert registry.template_for("unknown", "x", language="en", read_only=False) is None
    assert registry.template_for("question", "x", language="en", read_only=False) is None


# -- greetings, thanks, goodbyes --------------------------------------------------------------

SMALLTALK = [
    ("Hallo, guten Morgen!", "de", "Hallo!"),
    ("Hi, good morning!", "en", "Hello!"),
    ("Danke, tschüss!", "de", "Gern geschehen! Tschüss, bis bald!"),
    ("thanks a lot, bye", "en", "You're welcome! Goodbye, see you soon!"),
    ("Moin moin", "de", "Hallo!"),
    ("Hey there, how are you?", "en", "Hello! I'm fine, thank you. What can I do for you?"),
    ("Danke", "de", "Gern geschehen!"),
    ("Danke und tschüss", "de", "Gern geschehen! Tschüss, bis bald!"),
    ("Vielen Dank, das war super", "de", "Gern geschehen!"),
]


@pytest.mark.parametrize(("text", "language", "reply"), SMALLTALK)
def test_smalltalk_by_rule_with_a_fitting_reply(
    registry: IntentRegistry, text: str, language: str, reply: str
) -> None:
    decision = registry.decide(text)
    assert (decision.intent, decision.tier, decision.language) == ("smalltalk", "rules", language)
    assert decision.compound is None
    assert registry.reply_for(decision) == reply


def test_reply_for_other_intents_is_none(registry: IntentRegistry) -> None:
    assert registry.reply_for(registry.decide("Remind me to call Anna")) is None
    assert registry.reply_for(registry.decide("Book a flight to Berlin")) is None


def test_a_request_after_thanks_is_no_smalltalk(registry: IntentRegistry) -> None:
    decision = registry.decide("Thanks, now open Excel")
    assert decision.intent != "smalltalk"
    assert decision.compound is None  # one action


def test_warm_trains_the_classifier_before_any_request_needs_it() -> None:
    from graph.intents import classifier

    registry = IntentRegistry.load()
    classifier._train.cache_clear()
    registry.warm()
    assert classifier._train.cache_info().currsize == 1
    registry.decide("I need a reminder to water the plants")  # the classifier tier: no training
    assert classifier._train.cache_info().misses == 1


@pytest.mark.parametrize(
    ("intent", "read_only"),
    [
        ("email", False),
        ("email", True),
        ("calendar", False),
        ("app_control", True),
        ("app_control", False),
        ("unknown", False),
        ("question", False),
    ],
)
def test_has_template_says_whether_template_for_makes_one(
    registry: IntentRegistry, intent: str, read_only: bool
) -> None:
    # `route` asks without filling (and validating) a plan; `template` then fills it.
    made = registry.template_for(intent, "Any news?", language="en", read_only=read_only)
    assert registry.has_template(intent, language="en", read_only=read_only) is (made is not None)


# -- the open world -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "what do I need to do to get my car jump started",
        "roll the five sided die",
        "where can I buy new shingles",
        "when's my next pay day",
        # one word of an intent's examples ("inbox", "mail", "list") is no request for it
        "erase all voicemails in my inbox please",
        "how long until my new card comes in the mail",
        "I need more checkbooks delivered to me by mail",
        "Lösch alle Sprachnachrichten auf meiner Mailbox",
        # a text message is not an email; a thing put somewhere is not a file
        "send a text to Maya that I'll be late",
        "where did I put my keys",
        # an item on a to-do list is not a calendar entry or an email to write
        "cross 'schedule the vet appointment' off my to do list",
        "is 'reply to the landlord's email' on my list of reminders",
        # "remind me what/of …" asks for a fact: the reminder rule's negative says so, and
        # the classifier may not decide against it
        "can you remind me what my account number is",
        "remind me of the date today",
    ],
)
def test_requests_of_other_domains_fire_no_side_effecting_intent(text: str) -> None:
    registry = IntentRegistry.load()
    decision = registry.decide(text)
    side_effecting = registry.kind(decision.intent or "") == "plan" and not decision.read_only
    assert not side_effecting, decision.reason


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Forward the invoice to billing@example.com", "email"),
        ("Leite die Rechnung an die Buchhaltung weiter", "email"),
        ("Where did I put the scanned contract?", "files"),
        ("Cross 'pay rent' off my to-do list", "reminder"),
    ],
)
def test_the_narrower_rules_still_serve_their_own(text: str, intent: str) -> None:
    assert IntentRegistry.load().decide(text).intent == intent


def test_a_rules_negative_denies_its_intent_to_the_classifier() -> None:
    from graph.intents.text import fold_request

    registry = IntentRegistry.load()
    judged = registry.rules.judge(fold_request("remind me what my PIN is"))
    assert judged.intent is None and judged.denied == frozenset({"reminder"})
    decision = registry.explain("remind me what my PIN is")
    assert decision.intent is None
    # a strong rule of the intent that did match outweighs another's negative
    assert registry.rules.judge(fold_request("Remind me to call Anna at 5")).denied == set()
    assert registry.decide("Remind me to call Anna at 5").intent == "reminder"


def test_a_look_up_of_the_calendar_and_the_mail_is_not_mails_alone() -> None:
    registry = IntentRegistry.load()
    assert registry.decide("Check my calendar and email for anything from Sophie").intent is None
    assert registry.decide("Check my email for anything from Sophie").intent == "email"


NEAR = """\
version: 1
classifier: {threshold: 0.4, margin: 0.05, support: 0.6}
out_of_scope:
  en: [erase my voicemails, play my voicemail, delete the voicemail from mum,
       voicemail greeting, order a pizza, book a flight, call my mother]
intents:
  - name: email
    description: Email.
    rules:
      - {name: email.en, language: en, weight: 0.9, patterns: ['send an email']}
    examples:
      en: [clean up my inbox, empty the inbox, archive everything in my inbox,
           sort my inbox, delete the newsletters in my inbox]
  - name: music
    description: Music.
    rules:
      - {name: music.en, language: en, weight: 0.9, patterns: ['play \\w+']}
    examples:
      en: [put on some jazz, next song please, turn the music up, shuffle my playlist,
           pause the music]
"""


def test_a_change_far_from_the_intents_examples_abstains_a_look_up_need_not() -> None:
    registry = IntentRegistry.from_text(NEAR)
    assert registry.classifier is not None
    # probable (the words of the inbox examples) but most of its neighbours are voicemails
    text = "erase all voicemails in my inbox please"
    verdict = registry.classifier.read(text)
    assert verdict.best[0] == "email" and verdict.support < 0.6
    decision = registry.explain(text)
    assert decision.intent is None and not decision.read_only
    assert "nearest examples" in decision.reason
    # the same verdict, and no floor: it decides
    assert verdict.decides(0.4, 0.05) == "email" and verdict.decides(0.4, 0.05, 0.6) is None
    # a request among the intent's own examples has their support
    assert registry.classifier.read("archive the newsletters in my inbox").support > 0.6


@pytest.mark.parametrize(
    "text",
    ["Is Sage busy around noon?", "Is my Thursday morning still open?", "Ist Jan um 3 frei?"],
)
def test_a_question_about_someone_or_a_time_is_read_only(text: str) -> None:
    assert is_read_only(text)


def test_a_read_only_step_gets_the_look_up_not_a_change() -> None:
    from graph.intents import is_read_only, look_up_query

    assert not is_read_only("Find my tax files and shred them")
    assert not is_read_only("Finde meine Steuerdateien und schreddere sie")
    assert is_read_only("Find my tax files")
    assert look_up_query("Find my tax files and shred them") == "Find my tax files"
    assert look_up_query("Shred my tax files") == ""
    registry = IntentRegistry.load()
    made = registry.template_for(
        "files", "Hey, where are my tax files?", language="en", read_only=True
    )
    assert made is not None
    (step,) = made.plan.todos
    assert step.inputs == {"query": "Hey, where are my tax files?"}
    assert made.effects == {"t1": "read"}
