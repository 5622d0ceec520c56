"""The values of a registry file: texts, names, language codes, patterns, weights.

Each is an ``Annotated`` type: pydantic's constraint where one says it (weights), else a
validator whose error says what is wrong in the registry's words, with the JSON Schema
``pattern`` an editor can check as you type. Errors written here are :func:`problem`: a
complete sentence, with ``ctx`` saying where to point (``on_key``: the key rather than its
value; ``first``: the loc under ``intents`` where the name was first defined, shown as its
line) and how to phrase it (``subject``: the message follows the key's name and value);
:mod:`graph.intents.registry_check` says them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from graph.effects import describe_effects, is_effect
from graph.intents.text import bounded, compile_any, fold_pattern
from lam.tools import EFFECT_PATTERN

#: The pydantic error type of every check written for the registry (the others: pydantic's).
ERROR_TYPE = "registry"
LANGUAGE_PATTERN = r"^[a-z]{2}$"
NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
_RESERVED_INTENTS = frozenset({"unknown"})
_NUMBERED_BACKREF = re.compile(r"(?<!\\)(?:\\\\)*\\[1-9]")


def problem(message: str, **ctx: Any) -> PydanticCustomError:
    """An error of the registry's own checks: ``message`` as written (braces and all),
    ``ctx`` for the report (``on_key``, ``first``, ``subject``: see the module's docstring)."""
    return PydanticCustomError(ERROR_TYPE, "{message}", {"message": message, **ctx})


def raise_all(found: list[InitErrorDetails]) -> None:
    """Several errors from one validator, each at its own place (locs relative to it)."""
    if found:
        raise ValidationError.from_exception_data(ERROR_TYPE, found)


def error_at(loc: tuple[str | int, ...], value: Any, message: str, **ctx: Any) -> InitErrorDetails:
    """One of several errors for :func:`raise_all`, at ``loc`` (relative to the validator)."""
    return InitErrorDetails(type=problem(message, **ctx), loc=loc, input=value)


# -- values ------------------------------------------------------------------------------


def _text(value: str) -> str:
    if not value.strip():
        raise problem("must be a non-empty string", subject=True)
    return value


def one_line(value: str) -> str:
    if "\n" in _text(value).strip():
        raise problem("must be one line", subject=True)
    return value.strip()


def _utterance(value: str) -> str:
    return _text(value).strip()


def _language(value: str) -> str:
    if not re.fullmatch(LANGUAGE_PATTERN, value):
        raise problem(f"{value!r} is not a language code (en, de, ...)")
    return value


def _name_like(example: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not re.fullmatch(NAME_PATTERN, value):
            raise problem(f"must look like '{example}'", subject=True)
        return value

    return check


def _intent_name(value: str) -> str:
    if value in _RESERVED_INTENTS:
        raise problem("is reserved", subject=True)
    return value


def _keyword(value: str) -> str:
    if not _text(value).strip().rstrip("*").strip():
        raise problem(f"keyword {value!r} is empty")
    return value


def _regex(what: str) -> Callable[[str], str]:
    """A check of one pattern as written; it is folded, then joined with others in one rule."""

    def check(text: str) -> str:
        regex = fold_pattern(_text(text))
        try:
            # alone first, so re's "at position N" counts in the pattern as written
            re.compile(regex, re.IGNORECASE)
        except re.error as exc:
            raise problem(f"{what} {text!r} is not a valid regular expression: {exc}") from None
        if _NUMBERED_BACKREF.search(regex):
            # patterns are joined into one alternation: group numbers would shift
            raise problem(
                f"{what} {text!r}: numbered back-references are not supported "
                "(name the group: (?P<x>...) and (?P=x))"
            )
        try:
            re.compile(bounded(f"(?:{regex})"), re.IGNORECASE)
        except re.error as exc:
            raise problem(f"{what} {text!r} cannot be embedded in a rule: {exc}") from None
        return text

    return check


def _effect(value: str) -> str:
    if not is_effect(value):
        raise problem(f"must be {describe_effects()}", subject=True)
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _pattern(regex: str) -> Any:
    return Field(json_schema_extra={"pattern": regex})


Text = Annotated[str, AfterValidator(_text), _pattern(r"\S")]
OneLine = Annotated[str, AfterValidator(one_line), _pattern(r"^\s*[^\n]*\S[^\n]*\s*$")]
Utterance = Annotated[str, AfterValidator(_utterance), _pattern(r"\S")]
LanguageCode = Annotated[str, AfterValidator(_language), _pattern(LANGUAGE_PATTERN)]
Act = Annotated[str, AfterValidator(_name_like("thanks")), _pattern(NAME_PATTERN)]
IntentName = Annotated[
    str,
    AfterValidator(_name_like("web_search")),
    AfterValidator(_intent_name),
    _pattern(NAME_PATTERN),
]
Weight = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
Margin = Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
StepEffect = Annotated[str, AfterValidator(_effect), _pattern(EFFECT_PATTERN)]
# Lists that may be written as one string.
_ONE_OR_MANY = BeforeValidator(_one_or_many, json_schema_input_type=str | list[str])
Keywords = Annotated[
    list[Annotated[str, AfterValidator(_keyword), _pattern(r"[^\s*]")]], _ONE_OR_MANY
]
Utterances = Annotated[list[Utterance], _ONE_OR_MANY]
Patterns = Annotated[list[Annotated[str, AfterValidator(_regex("pattern"))]], _ONE_OR_MANY]
Negatives = Annotated[
    list[Annotated[str, AfterValidator(_regex("negative pattern"))]], _ONE_OR_MANY
]
AbstainPatterns = Annotated[
    list[Annotated[str, AfterValidator(_regex("abstain pattern"))]], _ONE_OR_MANY
]
PerLanguage = dict[LanguageCode, Utterances]


class Strict(BaseModel):
    # strict: YAML's `yes` is a bool and `1` a number, neither is a name or a text.
    model_config = ConfigDict(extra="forbid", strict=True)


def combined(patterns: list[str], kind: str) -> list[str]:
    """A rule's patterns are compiled as one: e.g. a group name used twice clashes."""
    try:
        compile_any(fold_pattern(p) for p in patterns)
    except re.error as exc:
        raise problem(f"its {kind} cannot be combined: {exc}") from None
    return patterns
