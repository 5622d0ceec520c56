"""Which classifier for the intent tier: the candidates on our labelled sets, side by side.

    python -m benchmarks.intent_classifier          # a table
    python -m benchmarks.intent_classifier --json

Each model (graph.intents.classifier.MODELS) learns from the packaged registry's examples,
is calibrated on tests/data/intents_calibration.jsonl (the threshold and margin with
precision >= 0.98 and no false fire), and is then measured on the English and German eval
sets with those settings: coverage of single-action requests with the rules, the
classifier's precision and false fires, training time and time per request.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from graph.intents import IntentRegistry
from graph.intents.classifier import MODELS
from graph.intents.evaluate import calibrate, evaluate, read_labelled

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def _registry(
    base: IntentRegistry, model: str, threshold: float, margin: float, support: float = 0.0
) -> IntentRegistry:
    return IntentRegistry(
        base.intents.values(),
        min_confidence=base.min_confidence,
        margin=base.margin,
        abstain_patterns=base.abstain_patterns,
        classifier=replace(
            base.classifier_spec, threshold=threshold, margin=margin, support=support
        ),
        out_of_scope=base.out_of_scope,
        classifier_model=model,
    )


def measure(model: str) -> dict[str, Any]:
    base = IntentRegistry.load()
    names = base.names()
    registry = _registry(base, model, 0.5, 0.0)
    calibration = calibrate(registry, read_labelled(DATA / "intents_calibration.jsonl", names))
    best = calibration.best
    out: dict[str, Any] = {
        "model": model,
        "train_seconds": round(calibration.train_seconds, 3),
        "threshold": best.threshold if best else None,
        "margin": best.margin if best else None,
        "support": best.support if best else None,
    }
    if best is None:
        return out
    tuned = _registry(base, model, best.threshold, best.margin, best.support)
    assert tuned.classifier is not None
    texts: list[str] = []
    for language in ("en", "de"):
        labelled = read_labelled(DATA / f"intents_eval_{language}.jsonl", names)
        texts += [x.text for x in labelled]
        report = evaluate(tuned, labelled).to_json_dict()
        out[language] = {
            "rules": report["coverage"]["rules"],
            "rules+classifier": report["coverage"]["rules+classifier"],
            "classifier_precision": report["tiers"]["classifier"]["precision"],
            "classifier_false_fires": report["tiers"]["classifier"]["false_fires"],
        }
    started = time.perf_counter()
    tuned.classifier.read_many(texts)
    out["ms_per_request"] = round(1000 * (time.perf_counter() - started) / len(texts), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(model) for model in MODELS]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        "model   train s  ms/req  threshold margin   "
        "EN rules -> +clf (prec)   DE rules -> +clf (prec)"
    )
    for row in rows:
        if "en" not in row:
            print(
                f"{row['model']:<7} {row['train_seconds']:7.2f}  no setting reaches precision 0.98"
            )
            continue
        cells = [
            f"{100 * row[lang]['rules']:5.1f}% -> {100 * row[lang]['rules+classifier']:5.1f}% "
            f"({row[lang]['classifier_precision'] or 0:.3f})"
            for lang in ("en", "de")
        ]
        print(
            f"{row['model']:<7} {row['train_seconds']:7.2f}  {row['ms_per_request']:6.2f}  "
            f"{row['threshold']:9.2f} {row['margin']:6.2f}   {cells[0]}   {cells[1]}"
        )


if __name__ == "__main__":
    main()
