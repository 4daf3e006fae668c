"""The shared data sets through the real loaders, splitter, edge runtime and redactor.

Each test skips, saying why, where ../shared/data is absent (it exists beside the repository in CI, not on a
user's machine); the benchmarks take these paths as arguments.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hybridroute.config import DataConfig
from hybridroute.data import check_known_labels, load_labelled, stratified_split
from hybridroute.redaction import Redactor
from hybridroute.runtime import EdgeClassifier
from support.shared_data import shared_file

PLANTED = " my card is 4111 1111 1111 1111, call me on +1 415-555-0134 or mail jo.smith@example.org"


def test_banking77_loads_77_intents_and_splits_every_one_into_both_parts() -> None:
    train = load_labelled(DataConfig(shared_file("banking77", "train.csv"), label_col="category"))
    test = load_labelled(DataConfig(shared_file("banking77", "test.csv"), label_col="category"))

    split = stratified_split(train, val_fraction=0.1, seed=13)

    assert len(train) == 10_003 and len(test) == 3_080 and len(split.labels) == 77
    check_known_labels(test, split.labels)  # every test intent was seen in training
    val_counts, train_counts = split.validation.label_counts, split.train.label_counts
    for label, count in train.label_counts.items():
        assert abs(val_counts[label] - count * 0.1) <= 0.5 + 1e-9  # each class keeps its share, rounded
        assert val_counts[label] + train_counts[label] == count
    assert stratified_split(train, val_fraction=0.1, seed=13) == split  # seeded: the same split again


def test_airline_sentiment_loads_three_sentiments_with_the_default_columns() -> None:
    train = load_labelled(DataConfig(shared_file("airline_sentiment", "train.csv")))
    test = load_labelled(DataConfig(shared_file("airline_sentiment", "test.csv")))

    assert set(train.labels) == set(test.labels) == {"negative", "neutral", "positive"}
    assert len(train) == 11_542 and len(test) == 2_885


def test_an_edge_bundle_answers_real_messages_with_distributions(tiny_run: Path) -> None:
    texts = load_labelled(DataConfig(shared_file("airline_sentiment", "test.csv"))).texts[:300]
    classifier = EdgeClassifier.from_dir(tiny_run / "edge")

    predictions = classifier.predict(list(texts))

    assert len(predictions) == 300
    for prediction in predictions:
        assert prediction.label in classifier.labels
        assert math.isclose(sum(prediction.probabilities.values()), 1.0, abs_tol=1e-4)
        assert prediction.confidence == pytest.approx(max(prediction.probabilities.values()))


def test_personal_data_planted_in_real_messages_never_survives_redaction() -> None:
    texts = load_labelled(DataConfig(shared_file("banking77", "test.csv"), label_col="category")).texts[:500]
    redactor = Redactor()

    for text in texts:
        redacted = redactor.redact(text + PLANTED).text
        assert "4111" not in redacted and "555-0134" not in redacted and "jo.smith" not in redacted, redacted
        assert redacted.startswith(text[:10])  # the customer's own words before the planted data stay
