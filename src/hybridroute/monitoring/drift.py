"""Drift: how far recent inputs and confidences have moved from the validation reference (PSI).

The reference is computed once from a run's stored validation split and its
edge bundle (:func:`build_reference`) and saved as ``RUN/monitor_reference.json``
(:func:`save_reference`, :func:`load_reference`). It holds, per validation
text, the length in characters, the share of its tokens the tokenizer could
not place (``[UNK]``) and the edge's calibrated top-class confidence.

The Population Stability Index compares two samples of one quantity:
``PSI = Σ (c_i - r_i) · ln(c_i / r_i)`` over bins, with ``r_i`` and ``c_i`` the
reference's and the current sample's share of each bin. Common reading: below
0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a major one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hybridroute.config import check_positive, is_finite_number
from hybridroute.errors import ArtifactError, ConfigError
from hybridroute.files import write_text_atomic

REFERENCE_FILE = "monitor_reference.json"
REFERENCE_VERSION = 1
# A bin the other sample leaves empty would make ln(c/r) infinite; every share is floored at this
# (then renormalized), so one empty bin adds a large but finite term (e.g. 0.1 × ln(0.1/1e-4) ≈ 0.69).
PSI_EPSILON = 1e-4
UNK_TOKENS = ("[UNK]", "<unk>")
FEATURES = ("text_length", "unk_rate", "confidence")


class TokenEncoder(Protocol):
    """What :func:`text_profile` needs from a ``tokenizers.Tokenizer``."""

    def encode_batch(self, inputs: list[str]) -> list[Any]:
        """Encodings with ``ids``."""
        ...

    def token_to_id(self, token: str) -> int | None:
        """The id of a token, or None."""
        ...


# ---------------------------------------------------------------- pure helpers


def quantile_edges(reference: Sequence[float], bins: int) -> np.ndarray:
    """Interior bin edges at the reference's quantiles (observed values, not interpolated), ties merged.

    Edges are values the reference holds, so a discrete quantity (lengths, a
    mostly-zero rate) gets bins that split exactly where its values do.

    Example: quantile_edges([1, 2, 3, 4], 2) -> [2.0]; quantile_edges([0, 0, 0, 1], 4) -> [0.0]
    """
    check_positive("bins", bins)
    values = np.asarray(reference, dtype=float)
    if values.size == 0:
        raise ConfigError("the PSI reference sample is empty")
    return np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1], method="inverted_cdf"))


def bin_shares(values: Sequence[float], edges: np.ndarray, epsilon: float = PSI_EPSILON) -> np.ndarray:
    """Share of ``values`` in each bin (``x <= edge`` falls left), floored at ``epsilon`` and renormalized.

    Example: bin_shares([1, 1, 3], np.array([2.0])) -> [0.667, 0.333]
    """
    counts = np.bincount(np.searchsorted(edges, np.asarray(values, dtype=float), side="left"), minlength=edges.size + 1)
    shares = np.maximum(counts / max(counts.sum(), 1), epsilon)
    return shares / shares.sum()


def psi(reference: Sequence[float], current: Sequence[float], bins: int = 10) -> float:
    """Population Stability Index of ``current`` against ``reference``, on the reference's quantile bins.

    Quantile bins give each reference bin an equal share, so no bin is starved;
    ties (many equal lengths, mostly-zero unknown-token rates) merge bins.
    Returns NaN when ``current`` is empty.

    Example: psi(range(1000), range(1000)) -> 0.0; psi(range(1000), range(500, 1500)) -> about 3.5
    """
    if len(current) == 0:
        return math.nan
    edges = quantile_edges(reference, bins)
    r, c = bin_shares(reference, edges), bin_shares(current, edges)
    return float(((c - r) * np.log(c / r)).sum())


def text_profile(texts: Sequence[str], tokenizer: TokenEncoder | None) -> tuple[list[int], list[float | None]]:
    """Length in characters and unknown-token rate of each text (the inputs the drift check watches).

    The rate counts ``[UNK]`` among the tokens the tokenizer produced, special tokens
    ([CLS], [SEP]) included in the denominator; a text with no tokens has rate 0.
    Without a tokenizer (a classifier built from parts) the rates are None.

    Example: ["hi", "ünknøwn"] -> ([2, 7], [0.0, 0.33])
    """
    lengths = [len(t) for t in texts]
    if tokenizer is None or not hasattr(tokenizer, "token_to_id"):
        return lengths, [None] * len(texts)
    unk_ids = {i for i in (tokenizer.token_to_id(t) for t in UNK_TOKENS) if i is not None}
    rates: list[float | None] = []
    for encoding in tokenizer.encode_batch(list(texts)):
        ids = list(encoding.ids)
        rates.append(sum(i in unk_ids for i in ids) / len(ids) if ids else 0.0)
    return lengths, rates


# ---------------------------------------------------------------- the reference


@dataclass(frozen=True)
class Reference:
    """What validation traffic looked like, per text.

    Attributes:
        text_length: characters per validation text.
        unk_rate: unknown-token share per validation text.
        confidence: the edge's calibrated top-class confidence per validation text.
        accuracy: the edge's validation accuracy (None when unknown).
        model_version: the edge model the confidences came from.
        source: where it was computed from.
    """

    text_length: tuple[float, ...]
    unk_rate: tuple[float, ...]
    confidence: tuple[float, ...]
    accuracy: float | None = None
    model_version: str = ""
    source: str = ""

    def feature(self, name: str) -> tuple[float, ...]:
        """One of :data:`FEATURES`."""
        if name not in FEATURES:
            raise ConfigError(f"drift feature must be one of {', '.join(FEATURES)}; got {name!r}")
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, values unrounded: a reference read back from it bins exactly as this one.

        Rounding moved quantile edges near 1.0, so a service that built its reference and one that read the
        saved file gave the same traffic different PSI.
        """
        return {
            "version": REFERENCE_VERSION,
            "model_version": self.model_version,
            "source": self.source,
            "accuracy": self.accuracy,
            "text_length": [int(v) for v in self.text_length],
            "unk_rate": [float(v) for v in self.unk_rate],
            "confidence": [float(v) for v in self.confidence],
        }


def save_reference(reference: Reference, path: Path) -> Path:
    """Write a reference as JSON; returns the path."""
    return write_text_atomic(Path(path), json.dumps(reference.to_dict()) + "\n")


def load_reference(path: Path) -> Reference:
    """Read a reference written by :func:`save_reference` (a run folder means its ``monitor_reference.json``).

    Raises:
        ArtifactError: missing, unreadable or of a newer format.
    """
    path = Path(path)
    if path.is_dir():
        path = path / REFERENCE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(
            f"{path}: cannot read the monitor reference ({exc}); build it with build_reference"
        ) from exc
    version = data.get("version", 0) if isinstance(data, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version > REFERENCE_VERSION:
        raise ArtifactError(f"{path}: not a monitor reference of format <= {REFERENCE_VERSION}")
    text_length, unk_rate, confidence = (_reference_values(path, data, name) for name in FEATURES)
    accuracy = data.get("accuracy")
    if accuracy is not None and not is_finite_number(accuracy):
        raise ArtifactError(f"{path}: the monitor reference's 'accuracy' must be a number or null; got {accuracy!r}")
    return Reference(
        text_length,
        unk_rate,
        confidence,
        None if accuracy is None else float(accuracy),
        str(data.get("model_version", "")),
        str(data.get("source", "")),
    )


def _reference_values(path: Path, data: dict[str, Any], name: str) -> tuple[float, ...]:
    """The reference's list of finite numbers under ``name``, or ArtifactError naming the file and the key."""
    if name not in data:
        raise ArtifactError(f"{path}: the monitor reference lacks '{name}'; rebuild it with build_reference")
    values = data[name]
    if not isinstance(values, list) or not all(is_finite_number(v) for v in values):
        bad = next((v for v in values if not is_finite_number(v)), None) if isinstance(values, list) else values
        shown = f"a list holding {bad!r}" if isinstance(values, list) else repr(bad)
        shown = shown if len(shown) <= 60 else f"{shown[:57]}..."
        raise ArtifactError(
            f"{path}: the monitor reference's '{name}' must be a list of finite numbers; got {shown}; "
            "rebuild it with build_reference"
        )
    return tuple(float(v) for v in values)


def build_reference(run_dir: Path, threads: int = 1, save: bool = True, bundle: Path | None = None) -> Reference:
    """Compute the reference from a run's validation split and edge bundle (and save it in the run).

    Args:
        run_dir: a run folder with a stored split and an ``edge`` bundle.
        threads: ONNX Runtime threads for scoring the validation texts.
        save: write ``RUN/monitor_reference.json``.
        bundle: the edge bundle that scores the validation texts; the run's ``edge`` bundle by default.
    """
    from hybridroute.runs import RunLayout, load_saved_split  # runtime pieces, loaded only here
    from hybridroute.runtime.classifier import EdgeClassifier

    layout = RunLayout.open(Path(run_dir))
    validation = load_saved_split(layout).validation
    edge = EdgeClassifier.from_dir(layout.edge if bundle is None else Path(bundle), threads=threads)
    probabilities = edge.predict_proba(list(validation.texts))
    lengths, unk_rates = text_profile(validation.texts, edge.tokenizer)  # type: ignore[arg-type]
    rates = [0.0 if r is None else r for r in unk_rates]  # a bundle always has a tokenizer; None is only for typing
    predicted = [edge.labels[i] for i in probabilities.argmax(axis=1)]
    accuracy = float(np.mean([p == t for p, t in zip(predicted, validation.labels, strict=True)]))
    reference = Reference(
        tuple(lengths),
        tuple(rates),
        tuple(float(v) for v in probabilities.max(axis=1)),
        accuracy,
        edge.model_version,
        f"{layout.root} validation split ({len(lengths)} texts)",
    )
    if save:
        save_reference(reference, layout.root / REFERENCE_FILE)
    return reference


def drift_scores(reference: Reference, current: dict[str, Sequence[float]], bins: int = 10) -> dict[str, float]:
    """PSI per feature for which ``current`` has values (and the reference too).

    Example: drift_scores(ref, {"confidence": [...], "text_length": []}) -> {"confidence": 0.04}
    """
    scores = {}
    for name in FEATURES:
        values = current.get(name) or ()
        if len(values) and len(reference.feature(name)):
            scores[name] = psi(reference.feature(name), values, bins)
    return scores


def reference_for_run(run_dir: Path, threads: int = 1, bundle: Path | None = None) -> Reference:
    """The run's saved reference, rebuilt first when missing or made from another edge model than ``bundle``'s.

    Args:
        run_dir: a run folder with a stored split and an ``edge`` bundle.
        threads: ONNX Runtime threads, if it has to be built.
        bundle: the edge bundle being served; the run's ``edge`` bundle by default. A reference built for
            another bundle is not saved: ``RUN/monitor_reference.json`` stays the run's own bundle's.
    """
    from hybridroute.runs import RunLayout  # runtime pieces, loaded only here
    from hybridroute.runtime.bundle import load_manifest

    layout = RunLayout.open(Path(run_dir))
    edge_dir = layout.edge if bundle is None else Path(bundle)
    saved = layout.root / REFERENCE_FILE
    if saved.is_file():
        reference = load_reference(saved)
        if reference.model_version == load_manifest(edge_dir).model_version:
            return reference
    own = edge_dir.resolve() == layout.edge.resolve()
    return build_reference(layout.root, threads=threads, save=own, bundle=edge_dir)
