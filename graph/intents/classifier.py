"""The classifier tier: a sparse model over the registry's example utterances, no LLM.

Word (1-2 grams) and character (2-5 grams within words) TF-IDF features of the folded text,
and a multinomial logistic regression over the intents plus one class for "none of these"
(the registry's ``out_of_scope`` examples). It decides only when its best intent's
probability reaches the registry's ``classifier.threshold`` and leads the runner-up (the
"none" class included) by ``classifier.margin``; both are calibrated on a labelled set that
is not its training data (``cpa-planner intents calibrate``). Why this model: docs/intents.md
has the measurements.

A probability says which intent is likeliest, not whether the request is near any of them: a
request of another domain that shares one word with an intent's examples ("erase all
voicemails in my inbox") can score 0.99. So each verdict also carries the best intent's
*support*: of the :data:`NEIGHBOURS` training examples most similar to the request (cosine over
the same features), the share of their similarity that belongs to that intent's examples. A
request whose nearest examples are out-of-scope ones, or another intent's, has little support;
:func:`graph.intents.decide.decide` holds a side-effecting decision to ``classifier.support``.

scikit-learn is imported and the model trained on first use, once per process for the same
examples: a request the rules decide never pays for it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graph.intents.text import fold_request

#: The class of the out-of-scope examples: "none of the intents".
OUT_OF_SCOPE = "<none>"
#: How many of the most similar training examples a verdict's support is measured over.
NEIGHBOURS = 7


@dataclass(frozen=True)
class ClassifierVerdict:
    """The classifier's reading of one request: every class's probability, best first."""

    ranked: tuple[tuple[str, float], ...]
    #: the best class's share of the similarity of the nearest training examples (0..1)
    support: float = 1.0

    @property
    def best(self) -> tuple[str, float]:
        return self.ranked[0]

    @property
    def lead(self) -> float:
        """How far the best class leads the runner-up."""
        return self.ranked[0][1] - (self.ranked[1][1] if len(self.ranked) > 1 else 0.0)

    def decides(self, threshold: float, margin: float, support: float = 0.0) -> str | None:
        """The intent, when the best class is one, it is confident enough and the nearest
        examples support it; else None."""
        label, score = self.best
        if label == OUT_OF_SCOPE or score < threshold or self.lead < margin:
            return None
        if self.support < support:
            return None
        return label


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Any
    classes: tuple[str, ...]
    seconds: float  # how long training took
    examples: Any  # the training examples' feature rows (sparse, L2-normalised per part)
    labels: Any  # their classes (a numpy array)
    parts: int  # feature parts, each normalised: a row's squared norm


#: The models compared in benchmarks/intent_classifier.py; the registry uses DEFAULT_MODEL.
MODELS = ("logreg", "svm", "knn")
DEFAULT_MODEL = "logreg"


def build_pipeline(model: str = DEFAULT_MODEL) -> Any:
    """The untrained model (see the module docstring); ``model`` is one of :data:`MODELS`."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b"),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
    )
    estimators: dict[str, Any] = {
        # newton-cg: the same model as lbfgs here, ten times faster to fit on these features
        "logreg": LogisticRegression(
            C=20.0, solver="newton-cg", max_iter=1000, class_weight="balanced"
        ),
        "svm": CalibratedClassifierCV(LinearSVC(C=1.0), cv=3),
        "knn": KNeighborsClassifier(n_neighbors=7, metric="cosine", weights="distance"),
    }
    return make_pipeline(features, estimators[model])


_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _train(key: str, data: str, model: str) -> TrainedModel:
    import numpy

    pairs: list[tuple[str, str]] = json.loads(data)
    started = time.perf_counter()
    pipeline = build_pipeline(model)
    texts = [fold_request(text) for text, _ in pairs]
    pipeline.fit(texts, [label for _, label in pairs])
    classes = tuple(str(label) for label in pipeline.classes_)
    features = pipeline[:-1]
    parts = len(features[0].transformer_list)  # build_pipeline's union of normalised parts
    return TrainedModel(
        pipeline,
        classes,
        time.perf_counter() - started,
        features.transform(texts),
        numpy.array([label for _, label in pairs]),
        parts,
    )


def _support(trained: TrainedModel, similarity: Any, label: str) -> float:
    """``label``'s share of the similarity of the :data:`NEIGHBOURS` nearest examples;
    ``similarity``: the request's similarity to each training example."""
    import numpy

    nearest = numpy.argsort(-similarity, kind="stable")[:NEIGHBOURS]
    total = float(similarity[nearest].sum())
    if total <= 0.0:
        return 0.0  # no feature in common with any example
    return float(similarity[nearest][trained.labels[nearest] == label].sum()) / total


class ExampleClassifier:
    """Intents learnt from labelled examples; :meth:`read` trains on first use."""

    def __init__(
        self, examples: Mapping[str, Sequence[str]], *, model: str = DEFAULT_MODEL
    ) -> None:
        """``examples``: texts per intent name (and per :data:`OUT_OF_SCOPE`)."""
        self.model_name = model
        pairs = sorted((text, label) for label, texts in examples.items() for text in texts)
        self._data = json.dumps(pairs, ensure_ascii=False)
        self._key = hashlib.sha256(self._data.encode()).hexdigest()
        self.labels = frozenset(label for _, label in pairs)

    @property
    def usable(self) -> bool:
        """At least two classes to tell apart."""
        return len(self.labels) >= 2

    def model(self) -> TrainedModel:
        with _LOCK:  # one training per process, even when threads ask at once
            return _train(self._key, self._data, self.model_name)

    def read(self, text: str) -> ClassifierVerdict:
        """Every class's probability for one request."""
        return self.read_many([text])[0]

    def read_many(self, texts: Sequence[str]) -> list[ClassifierVerdict]:
        trained = self.model()
        folded = [fold_request(t) for t in texts]
        features = trained.pipeline[:-1].transform(folded)
        rows = trained.pipeline[-1].predict_proba(features)
        # cosine similarity to every example: each feature part is L2-normalised
        similarity = (trained.examples @ features.T).toarray().T / trained.parts
        out: list[ClassifierVerdict] = []
        for index, row in enumerate(rows):
            ranked = tuple(
                sorted(
                    ((str(label), float(p)) for label, p in zip(trained.classes, row, strict=True)),
                    key=lambda kv: (-kv[1], kv[0]),
                )
            )
            support = _support(trained, similarity[index], ranked[0][0])
            out.append(ClassifierVerdict(ranked, support))
        return out
