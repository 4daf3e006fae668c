"""A faster path for one query at a time: no batching, no padding, tuned session options.

:class:`EdgeClassifier` serves batches: ``encode_batch`` (which hands work to the
tokenizer's thread pool), padding, a mask built per call. A single query needs none of
that. :class:`FastClassifier` encodes one text, writes its ids into a preallocated
array, runs a session opened for single queries, and softmaxes one row. With
``buckets`` set, a query is padded up to the next bucket length, so ONNX Runtime sees
only a few shapes and can reuse its memory plan; measure before enabling it (on CPU the
extra padded tokens usually cost more than the plan saves).

Imports only numpy, onnxruntime and tokenizers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridroute.errors import ArtifactError, InferenceError
from hybridroute.runtime.bundle import MODEL_NAME, TOKENIZER_NAME, Manifest, read_bundle
from hybridroute.runtime.classifier import (
    LABEL_CHECK_TEXT,
    Session,
    check_output_width,
    check_texts,
    open_tokenizer,
    session_from,
    to_predictions,
)
from hybridroute.types import Prediction


@dataclass(frozen=True)
class SessionTuning:
    """ONNX Runtime options for single queries (each measured in ``bench variants``)."""

    threads: int = 1  # one query is too little work to split; 1 thread has the lowest p95 on a busy machine
    spinning: bool = False  # spinning workers burn a core between queries, which a shared edge box cannot spare
    mem_pattern: bool = True  # reuses the allocation plan when a shape repeats

    def options(self) -> Any:
        """The ``onnxruntime.SessionOptions`` these settings describe."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.enable_mem_pattern = self.mem_pattern
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        return options


def bucket_length(length: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds ``length`` tokens; ``length`` itself when none does or none are set.

    Example: bucket_length(11, (16, 32)) -> 16; bucket_length(40, (16, 32)) -> 40
    """
    for bucket in buckets:
        if length <= bucket:
            return bucket
    return length


def softmax_row(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of one logit row divided by ``temperature``, in float64.

    Example: softmax_row(np.array([0.0, 0.0]), 1.0) -> [0.5, 0.5]
    """
    scaled = logits.astype(np.float64) / temperature
    exp = np.exp(scaled - scaled.max())
    return exp / exp.sum()


@dataclass
class FastClassifier:
    """Classify one text at a time with as little work around the session as possible.

    Fresh (tiny) arrays per call keep one instance safe to share between threads, as ONNX
    Runtime sessions are.
    """

    session: Session
    tokenizer: Any
    labels: tuple[str, ...]
    max_length: int
    temperature: float = 1.0
    pad_id: int = 0
    buckets: tuple[int, ...] = ()
    manifest: Manifest | None = None

    def __post_init__(self) -> None:
        names = {i.name for i in self.session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= names:
            raise ArtifactError(f"model lacks input_ids/attention_mask; it has {sorted(names)}")
        self._token_types = "token_type_ids" in names
        self.buckets = tuple(sorted(b for b in self.buckets if b <= self.max_length))

    @classmethod
    def from_dir(
        cls, bundle_dir: str | Path, tuning: SessionTuning | None = None, buckets: Sequence[int] = ()
    ) -> FastClassifier:
        """Load a verified bundle with a session tuned for single queries."""
        bundle_dir = Path(bundle_dir)
        contents = read_bundle(bundle_dir)  # each file read once; what is verified is what gets loaded
        manifest = contents.manifest
        tuning = tuning or SessionTuning()
        session = session_from(contents.model, tuning.options(), origin=bundle_dir / MODEL_NAME)
        tokenizer, pad_id = open_tokenizer(contents.tokenizer, manifest.max_length, origin=bundle_dir / TOKENIZER_NAME)
        classifier = cls(
            session,
            tokenizer,
            manifest.labels,
            manifest.max_length,
            manifest.temperature,
            pad_id,
            tuple(buckets),
            manifest,
        )
        classifier.check_label_count()
        return classifier

    def check_label_count(self) -> None:
        """Refuse a model whose output width differs from the label list (as :class:`EdgeClassifier` does)."""
        check_output_width(self._run(self.encode_one(LABEL_CHECK_TEXT)), self.labels)

    def encode_one(self, text: str) -> dict[str, np.ndarray]:
        """The session feed for one text, padded only up to its bucket (no padding without buckets)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got a {type(text).__name__}")
        ids = self.tokenizer.encode(text).ids
        width = bucket_length(len(ids), self.buckets)
        if width == len(ids):
            input_ids = np.array([ids], dtype=np.int64)
            mask = np.ones_like(input_ids)
        else:
            input_ids = np.full((1, width), self.pad_id, dtype=np.int64)
            input_ids[0, : len(ids)] = ids
            mask = (np.arange(width) < len(ids)).astype(np.int64)[None, :]
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if self._token_types:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        return feed

    def logits_one(self, text: str) -> np.ndarray:
        """Logits of one text, shape (len(labels),)."""
        return self._run(self.encode_one(text))[0]

    def _run(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The session's logits for one encoded text, shape (1, len(labels))."""
        try:
            (logits,) = self.session.run(["logits"], feed)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise InferenceError(
                f"ONNX Runtime failed on one query of {feed['input_ids'].shape[1]} tokens: {exc}"
            ) from exc
        return np.asarray(logits)

    def predict_proba_one(self, text: str) -> np.ndarray:
        """Calibrated probabilities of one text."""
        return softmax_row(self.logits_one(text), self.temperature)

    def predict_one(self, text: str) -> Prediction:
        """Label, confidence and probabilities of one text."""
        return to_predictions(self.predict_proba_one(text)[None, :], self.labels)[0]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities of several texts, one query at a time (the bench's predictor interface)."""
        texts = check_texts(texts)
        if not texts:
            return np.zeros((0, len(self.labels)))
        return np.stack([self.predict_proba_one(t) for t in texts])


def suggested_buckets(max_length: int, smallest: int = 16) -> tuple[int, ...]:
    """Powers of two from ``smallest`` up to ``max_length`` (inclusive of ``max_length``).

    Example: suggested_buckets(128) -> (16, 32, 64, 128)
    """
    count = max(0, int(math.log2(max(max_length, 1) / smallest)))
    return tuple(sorted({smallest * 2**i for i in range(count + 1) if smallest * 2**i <= max_length} | {max_length}))
