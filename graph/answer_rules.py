"""What may answer a waiting `propose` or `assign`: the kind, the sender, the ToDo.

An answer fits its question when it is of the right kind (`agree`/`refuse` a `propose`,
`done`/`failure` an `assign`), comes from the one the question was sent to (only the person
a plan was proposed to can agree to it; only the desktop agent reports its ToDo done), and,
answering an `assign`, names that ToDo if it names one. The HTTP API refuses an answer that
does not fit before anything resumes; the nodes hold a resume value to the same rules, so
no other way in (Studio) can approve as someone else.
"""

from __future__ import annotations

from graph.state import LamDict
from lam import LAMMessage, Performative

ANSWERS: dict[Performative, tuple[Performative, ...]] = {
    Performative.PROPOSE: (Performative.AGREE, Performative.REFUSE),
    Performative.ASSIGN: (Performative.DONE, Performative.FAILURE),
}


class AnswerMismatchError(ValueError):
    """The answer is of the wrong kind for the message it answers."""


class NotTheReceiverError(PermissionError):
    """The answer comes from someone the waiting message was not sent to."""


class WrongTodoError(ValueError):
    """A `done`/`failure` names another ToDo than the `assign` it answers."""


def check_answer(question: LamDict, answer: LAMMessage) -> None:
    """Raise unless `answer` fits the waiting `question` (kind, sender, ToDo)."""
    asked = LAMMessage.from_dict(question, max_bytes=None)
    allowed = ANSWERS.get(asked.performative, ())
    if answer.performative not in allowed:
        names = " or ".join(p.value for p in allowed)
        raise AnswerMismatchError(
            f"a {asked.performative.value} is answered with {names}, "
            f"not {answer.performative.value}"
        )
    if answer.sender != asked.receiver:
        raise NotTheReceiverError(
            f"{asked.id} was sent to {asked.receiver}: only they may answer it, not {answer.sender}"
        )
    if asked.performative is Performative.ASSIGN:
        todo = asked.todo().id
        named = answer.content.get("todo_id")
        if named is not None and named != todo:
            raise WrongTodoError(f"{asked.id} assigned ToDo {todo}; the answer names {named}")
