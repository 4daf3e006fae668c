"""PSI, the input profile of texts, and the saved reference."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hybridroute.errors import ArtifactError, ConfigError
from hybridroute.monitoring.drift import (
    REFERENCE_FILE,
    Reference,
    bin_shares,
    drift_scores,
    load_reference,
    psi,
    quantile_edges,
    save_reference,
    text_profile,
)


def test_psi_is_zero_for_the_same_sample_and_grows_with_the_shift() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 5000)
    assert psi(base, base) == pytest.approx(0.0, abs=1e-12)
    same = psi(base, rng.normal(0, 1, 5000))
    moderate, major = psi(base, rng.normal(0.3, 1, 5000)), psi(base, rng.normal(1.0, 1, 5000))
    assert same < 0.02 < moderate < 0.25 < major


def test_psi_handles_ties_and_empty_bins() -> None:
    zeros = [0.0] * 90 + [0.1] * 10  # a mostly-zero unknown-token rate
    assert quantile_edges(zeros, 10).tolist() == [0.0]
    assert math.isfinite(psi(zeros, [0.5] * 100))  # every current value lands in a bin the reference barely holds
    assert psi(zeros, [0.5] * 100) > 1.0
    assert math.isnan(psi(zeros, []))


def test_bin_shares_floor_and_sum_to_one() -> None:
    shares = bin_shares([1, 1, 3], np.array([2.0, 5.0]))
    assert shares.sum() == pytest.approx(1.0)
    assert shares[2] > 0  # the empty bin is floored, not zero


def test_psi_rejects_an_empty_reference() -> None:
    with pytest.raises(ConfigError, match="empty"):
        psi([], [1.0])


class WordTokenizer:
    """A tokenizers-like fake: known words get ids, others [UNK]; [CLS] and [SEP] around."""

    vocab = {"[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "my": 4, "card": 5}

    def token_to_id(self, token: str) -> int | None:
        return self.vocab.get(token)

    def encode_batch(self, inputs: list[str]) -> list[object]:
        class Encoding:
            def __init__(self, ids: list[int]) -> None:
                self.ids = ids

        return [Encoding([2, *(self.vocab.get(w, 1) for w in text.split()), 3]) for text in inputs]


def test_text_profile_counts_characters_and_unknown_tokens() -> None:
    lengths, rates = text_profile(["my card", "my zzz qqq"], WordTokenizer())
    assert lengths == [7, 10]
    assert rates == [0.0, pytest.approx(2 / 5)]
    assert text_profile(["my card"], None) == ([7], [None])  # a classifier built from parts has no tokenizer


def test_text_profile_with_a_real_tokenizer() -> None:
    tokenizers = pytest.importorskip("tokenizers")
    model = tokenizers.models.WordLevel({"[UNK]": 0, "card": 1, "lost": 2}, unk_token="[UNK]")
    tokenizer = tokenizers.Tokenizer(model)
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    _, rates = text_profile(["lost card", "lost ½ card"], tokenizer)
    assert rates == [0.0, pytest.approx(1 / 3)]


def test_reference_round_trip(tmp_path: Path) -> None:
    reference = Reference((10, 20), (0.0, 0.25), (0.9, 0.61), 0.93, "abc", "validation")
    save_reference(reference, tmp_path / REFERENCE_FILE)
    assert load_reference(tmp_path) == reference  # a run folder means its monitor_reference.json


def test_load_reference_errors(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="build_reference"):
        load_reference(tmp_path / "missing.json")
    (tmp_path / "new.json").write_text(json.dumps({"version": 99}), encoding="utf-8")
    with pytest.raises(ArtifactError, match="format"):
        load_reference(tmp_path / "new.json")
    (tmp_path / "partial.json").write_text(json.dumps({"version": 1}), encoding="utf-8")
    with pytest.raises(ArtifactError, match="lacks"):
        load_reference(tmp_path / "partial.json")


def test_drift_scores_skip_features_without_values() -> None:
    reference = Reference((10, 20, 30), (), (0.9, 0.8, 0.7))
    scores = drift_scores(reference, {"text_length": [10, 20, 30], "unk_rate": [0.0], "confidence": []})
    assert set(scores) == {"text_length"}
    with pytest.raises(ConfigError, match="drift feature"):
        reference.feature("colour")


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ({"text_length": 5, "unk_rate": [], "confidence": []}, "'text_length'"),
        ({"text_length": [1, 2], "unk_rate": [0.0, "x"], "confidence": []}, "'unk_rate'"),
        ({"text_length": [1], "unk_rate": [0.0], "confidence": [None]}, "'confidence'"),
        ({"text_length": [1], "unk_rate": [0.0], "confidence": [True]}, "'confidence'"),
        ({"text_length": [1], "unk_rate": [0.0], "confidence": [0.9], "accuracy": "high"}, "'accuracy'"),
        ({"version": "1", "text_length": [1], "unk_rate": [0.0], "confidence": [0.9]}, "format"),
        ([1, 2, 3], "format"),
    ],
)
def test_a_malformed_reference_is_an_artifact_error_naming_the_key(tmp_path: Path, content: object, key: str) -> None:
    path = tmp_path / REFERENCE_FILE
    path.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(ArtifactError, match=key) as caught:
        load_reference(tmp_path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
