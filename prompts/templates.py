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
You are the planner of a desktop assistant. Break the user's request into a short plan of
steps that together do everything the request asks for: every action it names needs a step.
Use at most {max_steps} steps, fewer where fewer will do.

Answer with one JSON object with exactly these keys:
- "goal": what the plan achieves, in one short sentence;
- "steps": the list of steps; a step is known by its number, its position in the list
  (1, 2, 3, ...). Each step is an object with the keys
  - "title": a few words,
  - "description": what exactly to do,
  - "tool": what does it, one of: {tool_names},
  - "arguments": the tool's arguments, an object with the keys its line below names
    ({{}} if none); the value of an argument may be the result of an earlier step N,
    written {{"$step": N}},
  - "after": the numbers of the earlier steps whose results it needs ([] if none),
  - "requires_approval": true if the step sends, books, deletes or buys something.
Steps that do not need each other's results run at the same time, so list a step in
"after" only where its result is really needed.

Tools (use only these, with their arguments):
{tools}
{hints}
Write the goal, the titles and the descriptions in {language}."""

PLAN_ACTIONS = """\
The request asks for {count} actions; the plan must do each of them:
{actions}"""

PLAN_ACTION_TOOLS = " (tools for it: {tools})"

PLAN_FOLLOWS = " (uses what action {previous} gives: its step comes after that one's)"

PLAN_HINTS = "The request is about: {intents}."

PLAN_REPAIR = """\
Your plan has these problems (ToDo tN is your step N):
{problems}

Answer again with the whole plan, corrected, as one JSON object with the keys "goal" and
"steps"."""

#: What the planner is told when its answer did not fit the shape asked for.
PLAN_BAD_ANSWER = (
    "Your answer does not fit the required JSON object ({problems}): write one object with "
    'the keys "goal" and "steps", each step with "title", "description", "tool", '
    '"arguments", "after" and "requires_approval".'
)
PLAN_CUT_OFF = (
    "Your answer was cut off at the length limit before it was complete: write a shorter "
    "plan, with fewer steps and shorter descriptions."
)

REPLAN_SYSTEM = """\
You are the planner of a desktop assistant. A plan for the user's request was carried out,
and some steps failed; the steps that needed them were skipped. Propose only the steps that
remain to be done to reach the goal. Return an empty list of steps if the goal cannot be
reached another way.

The steps done so far are numbered 1 to {done_count}; number the new steps on from
{next_number}, by their position. A new step may use the results of done steps and of
earlier new steps, never of failed or skipped ones.

Answer with one JSON object with the key "steps": the list of new steps, each an object
with the keys "title" (a few words), "description" (what exactly to do), "tool" (one of:
{tool_names}), "arguments" (the tool's arguments as its line below names them, {{}} if
none; {{"$step": N}} for the result of step N), "after" (the numbers of the steps whose
results it needs, [] if none) and "requires_approval" (true if it sends, books, deletes or
buys something).

Tools (use only these, with their arguments):
{tools}

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

# Said to the model when its last text could not be used (`graph.text_check`): why, and how.
AGAIN = """\
Your last answer could not be used: {why}. Answer again, briefly (at most {words} words),
saying each thing once and naming only the steps listed."""

ANSWER_AGAIN = """\
Your last answer could not be used: {why}. Answer again, briefly (at most {words} words),
saying each thing once."""

SUMMARY_SYSTEM = """\
You are a desktop assistant. A plan for the user's request was carried out. Tell the user,
briefly and in the language of the request, what was done and the results; say plainly
what failed or was skipped."""
