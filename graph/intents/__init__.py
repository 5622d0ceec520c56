"""The intent registry and the tiers that decide a request without any LLM.

The registry is a YAML file (the default one is ``prompts/intents.yaml``)::

    version: 1
    min_confidence: 0.6          # the rules: optional, default 0.6
    margin: 0.2                  # optional, default 0.2
    classifier: {threshold: 0.7, margin: 0.3}     # when the example classifier may decide
    out_of_scope: {en: [...], de: [...]}          # requests no intent fits (classifier)
    abstain_patterns: ['...']    # optional: any match = several actions (the rules abstain)
    intents:
      - name: reminder
        description: Set reminders and keep a to-do list.   # one line, shown to the LLM and users
        kind: plan                                          # plan | answer
        rules:
          - name: reminder.en.remind
            language: en
            weight: 0.95                                    # in (0, 1]
            keywords: [reminder, to-do*]                    # phrases; trailing * = any ending
            patterns: ['remind (me|us)']                    # regular expressions
            negative: ['remind me,? (what|who)']            # any match vetoes this rule
        examples: {en: [...], de: [...]}                    # the classifier learns from these
        templates:                                          # or one plan_template for all
          act: {en: PLAN, de: PLAN}                         # does what was asked
          read: {en: PLAN, de: PLAN}                        # only looks: every step's effect
                                                            # is read or none
        phrases: {greeting: {en: [hi], de: [hallo]}}        # whole-message phrases (smalltalk)
        replies: {greeting: {en: Hello!, de: Hallo!}}       # their canned answers

    A PLAN is ``{goal, todos}``, each ToDo lam's (:class:`lam.plan.PlannedToDo`) with the
    ``effect`` of its step; ``{request}`` is filled in, and in a ``read`` template
    ``{query}``, what it looks up (:func:`~graph.intents.readonly.look_up_query`);
    ``effect`` (none, read, or what it changes: change, send, book, buy, delete, ...) says
    what the step does to the world (graph.approval).

Every key of the file is a field of :mod:`~graph.intents.registry_model`, whose JSON Schema
is ``prompts/intents.schema.json`` (``cpa-planner intents schema``; docs/intents.md).

Deciding (:meth:`IntentRegistry.decide`, :mod:`graph.intents.decide`): the rules
(:mod:`~graph.intents.rules`), then compound detection (:mod:`~graph.intents.compound`: a
request with several actions is never decided), then the example classifier
(:mod:`~graph.intents.classifier`). Each :class:`Decision` also says the request's language
(:mod:`~graph.intents.language`) and whether it only asks to look
(:mod:`~graph.intents.readonly`). The registry's check is :mod:`~graph.intents.registry_check`.
"""

from graph.effects import KNOWN_EFFECTS, Effect
from graph.intents.classifier import OUT_OF_SCOPE, ClassifierVerdict, ExampleClassifier
from graph.intents.compound import Action, Compound, actions, find_compound
from graph.intents.decision import Decision, RuleDecision, TemplatePlan, Tier
from graph.intents.language import detect_language
from graph.intents.readonly import is_read_only, look_up_query
from graph.intents.registry import IntentRegistry, default_registry
from graph.intents.registry_check import (
    RegistryError,
    RegistryProblem,
    check_registry,
    check_registry_text,
)
from graph.intents.registry_model import registry_json_schema
from graph.intents.spec import (
    DEFAULT_MARGIN,
    DEFAULT_MIN_CONFIDENCE,
    REQUIRED_LANGUAGES,
    ClassifierSpec,
    IntentKind,
    IntentSpec,
    Language,
    RuleSpec,
    TemplateSpec,
)
from graph.intents.text import fold

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_MIN_CONFIDENCE",
    "KNOWN_EFFECTS",
    "OUT_OF_SCOPE",
    "REQUIRED_LANGUAGES",
    "Action",
    "ClassifierSpec",
    "ClassifierVerdict",
    "Compound",
    "Decision",
    "Effect",
    "ExampleClassifier",
    "IntentKind",
    "IntentRegistry",
    "IntentSpec",
    "Language",
    "RegistryError",
    "RegistryProblem",
    "RuleDecision",
    "RuleSpec",
    "TemplatePlan",
    "TemplateSpec",
    "Tier",
    "actions",
    "check_registry",
    "check_registry_text",
    "default_registry",
    "detect_language",
    "find_compound",
    "fold",
    "is_read_only",
    "look_up_query",
    "registry_json_schema",
]
