"""The edge classifier: tokenizer + ONNX Runtime session + calibrated softmax.

Imports only numpy, onnxruntime and tokenizers, so an edge machine never needs torch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hybridroute.errors import ArtifactError, InferenceError
from hybridroute.runtime.bundle import MODEL_NAME, TOKENIZER_NAME, Manifest, read_bundle
from hybridroute.types import Prediction

logger = logging.getLogger(__name__)

# A model call may pad its texts by at most this share of their real tokens (see length_groups); measured on
# banking77 batches of 32: 0.2-0.5 all run ~2x faster per text than one unsorted call.
PADDING_BUDGET = 0.25
EXTERNAL_DATA_HINT = "; a bundle's model.onnx must hold all its weights, not refer to external data files"


class Session(Protocol):
    """The part of ``onnxruntime.InferenceSession`` we use; tests pass a fake."""

    def run(self, output_names: Sequence[str] | None, input_feed: dict[str, np.ndarray]) -> list[Any]:
        """Run the graph on named inputs."""
        ...

    def get_inputs(self) -> Sequence[Any]:
        """Describe the graph inputs (objects with a ``name``)."""
        ...


class TextTokenizer(Protocol):
    """The part of ``tokenizers.Tokenizer`` we use."""

    def encode_batch(self, inputs: list[str]) -> list[Any]:
        """Encode texts to objects with ``ids`` and ``attention_mask``."""
        ...


# ---------------------------------------------------------------- pure helpers


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``, numerically stable.

    Example: softmax(np.array([[0.0, 0.0]])) -> [[0.5, 0.5]]
    """
    scaled = logits.astype(np.float64) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=-1, keepdims=True)


def pad_batch(id_lists: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pad token-id lists to the longest one: (input_ids, attention_mask), both int64.

    Example: pad_batch([[5, 6, 7], [5]]) -> ([[5, 6, 7], [5, 0, 0]], [[1, 1, 1], [1, 0, 0]])
    """
    width = max(len(ids) for ids in id_lists)
    input_ids = np.full((len(id_lists), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(id_lists), width), dtype=np.int64)
    for row, ids in enumerate(id_lists):
        input_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    return input_ids, mask


def length_groups(lengths: Sequence[int], batch_size: int, max_padding: float = PADDING_BUDGET) -> list[list[int]]:
    """Split texts into model calls of similar length: indices, shortest texts first.

    Padding costs as much compute as real tokens, and one long text in a batch of
    short ones multiplies the batch's cost. So texts are sorted by length and a group
    grows while its padded size (count x longest) stays within ``1 + max_padding``
    times its real tokens, up to ``batch_size`` texts.

    Example: length_groups([3, 20, 4, 3], 8) -> [[0, 3, 2], [1]]
    """
    groups: list[list[int]] = []
    group: list[int] = []
    real = 0
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):  # stable: equal lengths keep their order
        length = lengths[index]
        fits = len(group) < batch_size and length * (len(group) + 1) <= (1.0 + max_padding) * (real + length)
        if group and not fits:
            groups.append(group)
            group, real = [], 0
        group.append(index)
        real += length
    if group:
        groups.append(group)
    return groups


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, refusing what is not a sequence of strings (a bare string would be read letter by letter).

    Example: check_texts(("a", "b")) -> ["a", "b"]; check_texts("ab") -> TypeError("... got one str ...")
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"texts must be a sequence of strings, got one {type(texts).__name__}: pass [text] for one")
    items = list(texts)
    for number, text in enumerate(items, start=1):
        if not isinstance(text, str):
            raise TypeError(f"text {number} is a {type(text).__name__}, not a str")
    return items


LABEL_CHECK_TEXT = "label check"  # what a classifier runs once at load to see how many classes its model outputs


def check_output_width(logits: np.ndarray, labels: Sequence[str]) -> None:
    """Refuse a model's logits (one row per text) whose width differs from the manifest's label list.

    Example: check_output_width(np.zeros((1, 3)), ["a", "b", "c", "d"]) -> ArtifactError("model outputs 3 classes ...")
    """
    if logits.ndim != 2 or logits.shape[1] != len(labels):
        width = f"{logits.shape[1]} classes" if logits.ndim == 2 else f"logits of shape {logits.shape}"
        raise ArtifactError(f"model outputs {width} but the manifest lists {len(labels)} labels")


def to_predictions(probabilities: np.ndarray, labels: Sequence[str]) -> list[Prediction]:
    """Turn a (n, k) probability matrix into predictions."""
    best = probabilities.argmax(axis=1)
    return [
        Prediction(
            label=labels[b],
            confidence=float(row[b]),
            probabilities={label: float(p) for label, p in zip(labels, row, strict=True)},
        )
        for b, row in zip(best, probabilities, strict=True)
    ]


# ---------------------------------------------------------------- classifier


@dataclass
class EdgeClassifier:
    """Classify texts with an ONNX model.

    Build from parts (tests pass a fake session) or load a verified bundle with
    :meth:`from_dir`.
    """

    session: Session
    tokenizer: TextTokenizer
    labels: tuple[str, ...]
    max_length: int
    temperature: float = 1.0
    pad_id: int = 0
    manifest: Manifest | None = None

    def __post_init__(self) -> None:
        self._input_names = {i.name for i in self.session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._input_names
        if missing:
            raise ArtifactError(f"model lacks inputs {sorted(missing)}; it has {sorted(self._input_names)}")

    @classmethod
    def from_dir(cls, bundle_dir: str | Path, threads: int = 0) -> EdgeClassifier:
        """Load a bundle after verifying its manifest and checksums.

        Args:
            bundle_dir: folder holding model.onnx, tokenizer.json and manifest.json.
            threads: intra-op threads for ONNX Runtime; 0 lets it choose.
        """
        bundle_dir = Path(bundle_dir)
        contents = read_bundle(bundle_dir)  # each file read once; what is verified is what gets loaded
        manifest = contents.manifest
        session = open_session(contents.model, threads, origin=bundle_dir / MODEL_NAME)
        tokenizer, pad_id = open_tokenizer(contents.tokenizer, manifest.max_length, origin=bundle_dir / TOKENIZER_NAME)
        classifier = cls(
            session, tokenizer, manifest.labels, manifest.max_length, manifest.temperature, pad_id, manifest
        )
        classifier.check_label_count()
        return classifier

    @property
    def model_version(self) -> str:
        """The bundle's model version, or 'unversioned' for one built from parts."""
        return self.manifest.model_version if self.manifest else "unversioned"

    def check_label_count(self) -> None:
        """Refuse a model whose output width differs from the label list."""
        check_output_width(self.run(*self.encode([LABEL_CHECK_TEXT])), self.labels)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, truncated at ``max_length``."""
        return [e.ids[: self.max_length] for e in self.tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Tokenize and pad to the longest text in the batch (truncated at ``max_length``)."""
        return pad_batch(self.token_ids(texts), self.pad_id)

    def feeds(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> dict[str, np.ndarray]:
        """The session's inputs for encoded texts (zero token types where the model takes them)."""
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        return feeds

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Run the session on encoded inputs and return logits."""
        try:
            (logits,) = self.session.run(["logits"], self.feeds(input_ids, attention_mask))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise InferenceError(f"ONNX Runtime failed on a batch of shape {input_ids.shape}: {exc}") from exc
        return np.asarray(logits)

    def logits(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Raw logits for ``texts`` in their order, computed in calls of similar length (:func:`length_groups`)."""
        texts = check_texts(texts)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if not texts:
            return out
        ids = self.token_ids(texts)
        for group in length_groups([len(x) for x in ids], batch_size):
            out[group] = self.run(*pad_batch([ids[i] for i in group], self.pad_id))
        return out

    def predict_proba(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Calibrated class probabilities, shape (len(texts), len(labels))."""
        return softmax(self.logits(texts, batch_size), self.temperature)

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[Prediction]:
        """Label, confidence and probabilities per text."""
        return to_predictions(self.predict_proba(texts, batch_size), self.labels)


# ---------------------------------------------------------------- loaders


def _name(source: Path | bytes, origin: Path | None, what: str) -> str:
    """How errors name a file given by path or as bytes.

    Example: _name(b"...", None, "model") -> "model (given as bytes)"; _name(Path("m.onnx"), None, "model") -> "m.onnx"
    """
    if origin is not None:
        return str(origin)
    return f"{what} (given as bytes)" if isinstance(source, bytes) else str(source)


def session_from(model: Path | bytes, options: Any, origin: Path | None = None) -> Session:
    """An ONNX Runtime CPU session on a model file or a model's bytes, with ``options`` (``SessionOptions``).

    ``origin`` names the model in errors when it is given as bytes. Bundles hold the whole model in
    ``model.onnx`` (every exporter and quantizer here writes one file): given bytes, ONNX Runtime would
    look for external data files in the working directory rather than the bundle, and such a model is
    refused.
    """
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(
            model if isinstance(model, bytes) else str(model), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises untyped errors for corrupt files
        hint = EXTERNAL_DATA_HINT if "external" in str(exc).lower() else ""
        raise ArtifactError(f"{_name(model, origin, 'model')}: ONNX Runtime cannot load it ({exc}{hint})") from exc
    if isinstance(model, bytes):
        _release_model_bytes(session)
    return session


def _release_model_bytes(session: Any) -> None:
    """Make ONNX Runtime's Python wrapper let go of the model bytes a session was built from.

    ``InferenceSession`` (onnxruntime up to 1.32 at least) keeps them in ``_model_bytes`` for the
    session's whole life, only to rebuild the session if its providers change (``set_providers``, or its
    fallback after a provider error): a second copy of the model (23 MB INT8, 90 MB FP32) that a CPU-only
    session never uses. With fallback disabled, a failing run raises instead of trying to rebuild.
    """
    session.disable_fallback()
    if getattr(session, "_model_bytes", None) is not None:
        session._model_bytes = None


def open_session(model: Path | bytes, threads: int = 0, origin: Path | None = None) -> Session:
    """Open an ONNX Runtime CPU session with full graph optimization, from a model file or its bytes."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return session_from(model, options, origin)


def open_tokenizer(source: Path | bytes, max_length: int, origin: Path | None = None) -> tuple[TextTokenizer, int]:
    """Load a ``tokenizers`` JSON file (or its bytes) with truncation at ``max_length``; return it and its pad id.

    ``origin`` names the file in errors when it is given as bytes.
    """
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_buffer(source) if isinstance(source, bytes) else Tokenizer.from_file(str(source))
    except Exception as exc:  # tokenizers raises a bare Exception for malformed files
        raise ArtifactError(f"{_name(source, origin, 'tokenizer')}: not a valid tokenizer file ({exc})") from exc
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    pad_id = tokenizer.token_to_id("[PAD]")
    if pad_id is None:
        pad_id = tokenizer.token_to_id("<pad>") or 0
    return tokenizer, pad_id
