"""The front door on public requests no one here wrote: CLINC150 and TaskBench.

    python -m benchmarks.open_world --clinc PATH/data_full.json --taskbench DIR [--split test]
        [--classifier THRESHOLD,MARGIN,SUPPORT]

Where the data comes from (neither is shipped; pass the paths of your own copies):

- CLINC150 (github.com/clinc/oos-eval, ``data/data_full.json``): 150 intents of ten other
  domains (banking, travel, cooking, small talk, ...) and requests outside all of them
  (``oos_*``). A few of its intents are ours (``calendar``, ``reminder``, ``todo_list``,
  ...: :data:`CLINC_OURS`); a few are close enough that our intent is no mistake
  (:data:`CLINC_CLOSE`); every other request is one a side-effecting intent must not take.
- TaskBench (github.com/microsoft/JARVIS, ``taskbench/data_*/user_requests.json`` with
  ``alignment_ids.json`` beside it): requests for one tool (``single``) or for several
  (``chain``, ``dag``), in three domains (daily-life APIs, multimedia, Hugging Face models).
  A request for several tools must not be decided as one intent.

Splits: ``dev`` is what the front door was developed on (CLINC's ``train`` and ``val``,
TaskBench's requests whose id is a multiple of 4); ``test`` is held back (CLINC's ``test``,
every other TaskBench request). Measure on ``test``; never tune on it. ``--classifier``
replaces the registry's classifier settings, to compare settings on ``dev``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from graph.intents import IntentRegistry
from graph.intents.spec import ClassifierSpec

Split = Literal["dev", "test"]

#: CLINC intents that are ours: deciding them as this intent is right.
CLINC_OURS: dict[str, str] = {
    "calendar": "calendar",
    "calendar_update": "calendar",
    "meeting_schedule": "calendar",
    "schedule_meeting": "calendar",
    "reminder": "reminder",
    "reminder_update": "reminder",
    "todo_list": "reminder",
    "todo_list_update": "reminder",
    "greeting": "smalltalk",
    "goodbye": "smalltalk",
    "thank_you": "smalltalk",
}
#: CLINC intents that are not ours, where one of ours is a fair reading all the same
#: ("set an alarm" as a reminder, "play my workout playlist" in the music app).
CLINC_CLOSE: dict[str, frozenset[str]] = {
    "alarm": frozenset({"reminder"}),
    "timer": frozenset({"reminder"}),
    "shopping_list": frozenset({"reminder"}),
    "shopping_list_update": frozenset({"reminder"}),
    "play_music": frozenset({"app_control"}),
    "next_song": frozenset({"app_control"}),
    "update_playlist": frozenset({"app_control"}),
    "change_volume": frozenset({"app_control"}),
    # "schedule an appointment for an oil change": an appointment is what calendar schedules
    "schedule_maintenance": frozenset({"calendar"}),
    # what web_search is for: current information, prices, opening hours, reviews
    **{
        name: frozenset({"web_search"})
        for name in (
            "weather",
            "traffic",
            "exchange_rate",
            "flight_status",
            "restaurant_reviews",
            "recipe",
            "directions",
            "distance",
        )
    },
}
TASKBENCH_DOMAINS = ("dailylifeapis", "multimedia", "huggingface")


@dataclass(frozen=True)
class OpenRequest:
    text: str
    source: str  # "clinc", "clinc-oos", "taskbench/<domain>"
    label: str  # CLINC intent, or TaskBench's single/chain/dag


def read_clinc(path: str | Path, split: Split) -> list[OpenRequest]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    parts = ("train", "val") if split == "dev" else ("test",)
    out: list[OpenRequest] = []
    for part in parts:
        out += [OpenRequest(t, "clinc", label) for t, label in data[part]]
        out += [OpenRequest(t, "clinc-oos", "oos") for t, _ in data[f"oos_{part}"]]
    return out


def read_taskbench(directory: str | Path, split: Split) -> list[OpenRequest]:
    out: list[OpenRequest] = []
    for domain in TASKBENCH_DOMAINS:
        folder = Path(directory) / f"data_{domain}"
        if not folder.is_dir():
            continue
        aligned = json.loads((folder / "alignment_ids.json").read_text(encoding="utf-8"))
        shape = {i: kind for kind, ids in aligned["node_alignment_id"].items() for i in ids}
        for line in (folder / "user_requests.json").read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            dev = int(item["id"]) % 4 == 0
            if dev != (split == "dev") or item["id"] not in shape:
                continue
            out.append(OpenRequest(item["user_request"], f"taskbench/{domain}", shape[item["id"]]))
    return out


@dataclass
class Tally:
    requests: int = 0
    side_effecting: int = 0  # a plan intent decided wrongly on a request that changes things
    look_ups: int = 0  # ... on a read-only request: a look-up, nothing changed
    answers: int = 0  # question/smalltalk decided (answered directly, no plan)
    right: int = 0  # our intent, decided right
    ours: int = 0  # requests that are ours
    several: int = 0  # requests for several actions (TaskBench chain/dag)
    several_decided: int = 0  # ... decided as one intent
    several_compound: int = 0  # ... found as several actions
    examples: list[str] = field(default_factory=list)

    def rate(self, part: int, whole: int | None = None) -> float:
        whole = self.requests if whole is None else whole
        return part / whole if whole else 0.0


def measure(registry: IntentRegistry, requests: Iterable[OpenRequest]) -> dict[str, Tally]:
    """Every request decided; counts per source (see the module docstring)."""
    tallies: dict[str, Tally] = {}
    for item in requests:
        tally = tallies.setdefault(item.source, Tally())
        tally.requests += 1
        decision = registry.decide(item.text)
        if item.source.startswith("taskbench") and item.label != "single":
            tally.several += 1
            tally.several_compound += decision.compound is not None
            if decision.intent is not None:
                tally.several_decided += 1
                tally.examples.append(f"{decision.intent}/{decision.tier}: {item.text}")
            continue
        if item.source.startswith("taskbench"):
            continue  # a single tool: no label of ours to hold it to
        ours = CLINC_OURS.get(item.label)
        tally.ours += ours is not None
        if decision.intent is None:
            continue
        if decision.intent == ours:
            tally.right += 1
        elif registry.kind(decision.intent) != "plan":
            tally.answers += 1
        elif decision.intent in CLINC_CLOSE.get(item.label, ()):
            pass
        elif decision.read_only:
            tally.look_ups += 1
        else:
            tally.side_effecting += 1
            tally.examples.append(
                f"{decision.intent}/{decision.tier} {decision.confidence:.2f}: {item.text}"
                f" [{item.label}]"
            )
    return tallies


def _pct(value: float) -> str:
    return f"{100 * value:5.2f}%"


def report(tallies: dict[str, Tally], *, show: int) -> str:
    lines = []
    clinc = [tallies[s] for s in ("clinc", "clinc-oos") if s in tallies]
    if clinc:
        lines.append("CLINC150       requests  side-effecting fires  look-up fires  ours right")
        for name in ("clinc", "clinc-oos"):
            if name not in tallies:
                continue
            t = tallies[name]
            other = t.requests - t.ours
            right = f"{t.right}/{t.ours}" if t.ours else "-"
            fires = _pct(t.rate(t.side_effecting, other))
            looks = _pct(t.rate(t.look_ups, other))
            lines.append(
                f"{name:<14} {t.requests:>8}  {t.side_effecting:>6} ({fires})"
                f"  {t.look_ups:>5} ({looks})  {right}"
            )
        lines.append("(rates: of the requests that are not ours)")
    task = [(s, t) for s, t in sorted(tallies.items()) if s.startswith("taskbench")]
    if task:
        lines += ["", "TaskBench                 several actions  decided as one  found as several"]
        for name, t in task:
            decided = _pct(t.rate(t.several_decided, t.several))
            found = _pct(t.rate(t.several_compound, t.several))
            lines.append(
                f"{name:<25} {t.several:>15}  {t.several_decided:>6} ({decided})"
                f"  {t.several_compound:>6} ({found})"
            )
    if show:
        for name, t in sorted(tallies.items()):
            if t.examples:
                lines += ["", f"{name}: first {min(show, len(t.examples))} of {len(t.examples)}"]
                lines += [f"  {e}" for e in t.examples[:show]]
    return "\n".join(lines)


def to_json(tallies: dict[str, Tally]) -> dict[str, Any]:
    return {
        name: {k: v for k, v in vars(t).items() if k != "examples"}
        for name, t in sorted(tallies.items())
    }


def with_classifier(
    registry: IntentRegistry, setting: str, parser: argparse.ArgumentParser
) -> IntentRegistry:
    """The registry with other classifier settings ("0.65,0.6,0.5")."""
    try:
        threshold, margin, support = (float(part) for part in setting.split(","))
    except ValueError:
        parser.error(f"--classifier {setting!r}: expected THRESHOLD,MARGIN,SUPPORT")
    return IntentRegistry(
        registry.intents.values(),
        min_confidence=registry.min_confidence,
        margin=registry.margin,
        abstain_patterns=registry.abstain_patterns,
        classifier=ClassifierSpec(threshold, margin, support),
        out_of_scope=registry.out_of_scope,
        source=registry.source,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clinc", help="CLINC150's data_full.json")
    parser.add_argument("--taskbench", help="TaskBench's folder (with data_dailylifeapis/ ...)")
    parser.add_argument("--split", choices=("dev", "test"), default="test")
    parser.add_argument("--registry", help="an intent registry (default: the packaged one)")
    parser.add_argument(
        "--classifier",
        metavar="T,M,S",
        help="the classifier's threshold, margin and support instead of the registry's",
    )
    parser.add_argument("--show", type=int, default=0, help="print this many mistakes each")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.clinc and not args.taskbench:
        parser.error("give --clinc, --taskbench or both")
    registry = IntentRegistry.load(args.registry)
    if args.classifier:
        registry = with_classifier(registry, args.classifier, parser)
    requests: list[OpenRequest] = []
    if args.clinc:
        requests += read_clinc(args.clinc, args.split)
    if args.taskbench:
        requests += read_taskbench(args.taskbench, args.split)
    registry.warm()
    started = time.perf_counter()
    tallies = measure(registry, requests)
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps({"split": args.split, "sources": to_json(tallies)}, indent=2))
    else:
        print(report(tallies, show=args.show))
        print(f"\n{len(requests)} requests in {seconds:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
