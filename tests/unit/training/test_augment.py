from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from hybridroute.data import LabelledTexts, Split
from hybridroute.errors import ConfigError
from hybridroute.training.augment import Perturbation, perturbed_copies, with_training_texts

TEXTS = LabelledTexts(
    ("my flight was delayed again and nobody told us why", "thanks for the upgrade", "hello", "great crew"),
    ("negative", "positive", "neutral", "positive"),
)


def test_a_copy_keeps_only_words_of_its_text_and_is_never_empty() -> None:
    rng = np.random.default_rng(0)
    text = TEXTS.texts[0]
    for _ in range(200):
        copy = Perturbation(drop=0.5, swaps=2).apply(text, rng)
        assert copy.split() and not Counter(copy.split()) - Counter(text.split())


def test_dropping_every_word_still_leaves_one() -> None:
    copy = Perturbation(drop=0.999999, swaps=0).apply("a b c d", np.random.default_rng(1))
    assert len(copy.split()) == 1 and copy in "a b c d"


def test_a_one_word_text_and_a_null_perturbation_leave_the_text_alone() -> None:
    rng = np.random.default_rng(0)
    assert Perturbation().apply("hello", rng) == "hello"
    assert Perturbation(drop=0.0, swaps=0).apply(TEXTS.texts[0], rng) == TEXTS.texts[0]


def test_a_swap_exchanges_two_neighbours() -> None:
    copy = Perturbation(drop=0.0, swaps=1).apply("a b c d e", np.random.default_rng(3)).split()
    moved = [i for i, word in enumerate(copy) if word != "abcde"[i]]
    assert sorted(copy) == list("abcde") and len(moved) == 2 and moved[1] - moved[0] == 1


def test_copies_come_in_order_with_their_labels_and_are_seeded() -> None:
    copies = perturbed_copies(TEXTS, copies=3, seed=5)
    assert len(copies) == 12 and copies.labels == TEXTS.labels * 3
    assert copies == perturbed_copies(TEXTS, copies=3, seed=5)
    assert copies.texts != perturbed_copies(TEXTS, copies=3, seed=6).texts
    assert len(perturbed_copies(TEXTS, copies=0, seed=5)) == 0


def test_copies_are_added_to_the_training_texts_only() -> None:
    split = Split(TEXTS, TEXTS.subset([0, 1]), ("negative", "neutral", "positive"))
    grown = with_training_texts(split, perturbed_copies(TEXTS, copies=1, seed=0))
    assert len(grown.train) == 8 and grown.train.texts[:4] == TEXTS.texts
    assert grown.validation == split.validation and grown.labels == split.labels


@pytest.mark.parametrize("settings", [{"drop": 1.0}, {"drop": -0.1}, {"swaps": -1}])
def test_bad_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Perturbation(**settings)  # type: ignore[arg-type]


def test_negative_copies_are_refused() -> None:
    with pytest.raises(ConfigError, match="copies must be 0 or more; got -1"):
        perturbed_copies(TEXTS, copies=-1, seed=0)
