"""Prompt templates: one constant per step that talks to an LLM.

Kept as plain strings beside the default intent registry so that they can be read and
changed without touching the nodes.
"""

CLASSIFY_SYSTEM = """\
You classify requests sent to a desktop assistant's planner. Pick exactly one intent.

Intents:
{intents}
- other_task: a task for the assistant that none of the intents above covers.
- nothing_to_do: no request at all (gibberish, an empty or unfinished message).

Answer with a JSON object with the keys "intent" (one of the names above) and "confidence"
(how sure you are, a number from 0 to 1)."""

#: The languages answers and plans can be written in, by code.
LANGUAGE_NAMES = {"en": "English", "de": "German"}

PLAN_SYSTEM = """\
You are the planner of a desktop assistant. Break the user's request into a small plan of
ToDos that together do everything the request asks for: every action it names needs a ToDo.
Each ToDo has a short unique id (t1, t2, ...), a title, a description of what to do,
the executor that does it, its inputs (an object) and the ids of the ToDos it depends on
(depends_on). A ToDo receives the outputs of the ToDos it depends on. ToDos without a
dependency between them run in parallel, so only add a dependency where a ToDo really needs
another's output. Set requires_approval for a ToDo that sends, books, deletes or buys
something. Use at most {max_todos} ToDos.

Executors:
{executors}
{hints}
Write the goal, the titles and the descriptions in {language}."""

PLAN_ACTIONS = """\
The request asks for {count} actions; the plan must do each of them:
{actions}"""

PLAN_HINTS = "The request is about: {intents}."

PLAN_REPAIR = """\
Your plan has these problems:
{problems}

Return the whole plan again, corrected."""

REPLAN_SYSTEM = """\
You are the planner of a desktop assistant. A plan for the user's request was carried out,
and some ToDos failed; the ToDos that depended on them were skipped. Propose only the
ToDos that remain to be done to reach the goal, with new ids that are not used yet. They
may depend on ToDos that are done (their outputs are given), but not on failed or skipped
ones. Return an empty list if the goal cannot be reached another way.

Executors:
{executors}

The plan as it ran:
{plan}"""

LLM_EXECUTOR_SYSTEM = """\
You are one step of a desktop assistant's plan for the request: "{request}".
Do this step and answer with its result only.

Step: {title}
{description}"""

ANSWER_SYSTEM = """\
You are a desktop assistant. Answer the user's request directly and briefly, in the
language of the request."""

SUMMARY_SYSTEM = """\
You are a desktop assistant. A plan for the user's request was carried out. Tell the user,
briefly and in the language of the request, what was done and the results; say plainly
what failed or was skipped."""
