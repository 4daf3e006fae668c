"""How well the label-free accuracy estimate (mean calibrated confidence) tracks measured accuracy.

The monitor estimates accuracy without labels as the mean top-class
confidence of the answers; with temperature-scaled confidences that is the
expected accuracy. :func:`tracking` measures how close it comes on labelled
data, overall and in consecutive windows; :func:`measure_tracking` runs a
run's edge bundle over a labelled file to get those numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridroute.config import check_positive


@dataclass(frozen=True)
class Tracking:
    """Estimated against measured accuracy.

    Attributes:
        queries: labelled answers.
        estimated, measured: overall mean confidence and accuracy.
        gap: ``estimated - measured`` overall.
        window: answers per window.
        window_gaps: ``estimated - measured`` per full window, in order.
        max_abs_window_gap, mean_abs_window_gap: over the windows (None when there are none: nothing measured).
        sampling_abs_window_gap: the mean |gap| a perfectly calibrated estimate would still show per window,
            from sampling alone (each answer right with its confidence's probability; None without windows).
    """

    queries: int
    estimated: float
    measured: float
    gap: float
    window: int
    window_gaps: tuple[float, ...]
    max_abs_window_gap: float | None
    mean_abs_window_gap: float | None
    sampling_abs_window_gap: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = dict(self.__dict__)
        data["window_gaps"] = list(self.window_gaps)
        return data


def tracking(confidence: Sequence[float], correct: Sequence[bool], window: int = 300) -> Tracking:
    """Compare mean confidence with accuracy overall and in consecutive full windows of ``window``.

    Example: confidences all 0.9, 90% correct -> gap 0.0
    """
    check_positive("window", window)
    c, y = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    if c.size == 0 or c.size != y.size:
        raise ValueError(f"need equal, non-empty confidence and correct arrays; got {c.size} and {y.size}")
    gaps = tuple(
        float(c[i : i + window].mean() - y[i : i + window].mean()) for i in range(0, c.size - window + 1, window)
    )
    absolute = np.abs(gaps)
    # A calibrated window's accuracy is a sum of Bernoulli(c_i): its spread is sqrt(sum c(1-c)) / window, and the
    # mean absolute value of a normal deviation is sqrt(2 / pi) times its spread.
    spreads = [
        float(np.sqrt((c[i : i + window] * (1 - c[i : i + window])).sum()) / window)
        for i in range(0, c.size - window + 1, window)
    ]
    return Tracking(
        int(c.size),
        float(c.mean()),
        float(y.mean()),
        float(c.mean() - y.mean()),
        window,
        gaps,
        float(absolute.max()) if gaps else None,
        float(absolute.mean()) if gaps else None,
        float(np.sqrt(2 / np.pi) * np.mean(spreads)) if spreads else None,
    )


def verdicts(found: Tracking, limit: float = 0.02) -> dict[str, bool | None]:
    """Whether the estimate stays within ``limit`` (0.02 = 2 points) overall, on average per window, in every window.

    A window of 300 answers at 94% accuracy has a sampling spread of about 1.4 points by itself, so the
    worst window says more about the window size than about the estimate. With no full window (fewer
    answers than ``window``) the per-window verdicts are None: nothing was measured, so nothing passed.

    Example: 200 answers, window 300 -> {"overall": True, "mean_window": None, "every_window": None}
    """
    mean, worst = found.mean_abs_window_gap, found.max_abs_window_gap
    return {
        "overall": abs(found.gap) <= limit,
        "mean_window": None if mean is None else mean <= limit,
        "every_window": None if worst is None else worst <= limit,
    }


def verdict_text(ok: bool | None) -> str:
    """How a verdict prints: "yes", "NO", or "n/a" when there was nothing to judge."""
    return "n/a" if ok is None else "yes" if ok else "NO"


def _points(value: float | None) -> str:
    """A share in points, or "n/a" when nothing was measured.

    Example: _points(0.0123) -> "1.23"; _points(None) -> "n/a"
    """
    return "n/a" if value is None else f"{100 * value:.2f}"


def summary(found: Tracking) -> str:
    """One line for people."""
    return (
        f"label-free estimate on {found.queries} answers: estimated {100 * found.estimated:.2f}%, measured "
        f"{100 * found.measured:.2f}%, gap {100 * found.gap:+.2f} points; {len(found.window_gaps)} windows of "
        f"{found.window}: mean |gap| {_points(found.mean_abs_window_gap)}, max |gap| "
        f"{_points(found.max_abs_window_gap)} points (sampling alone would give a mean |gap| of "
        f"{_points(found.sampling_abs_window_gap)})"
    )


def measure_tracking(
    run_dir: Path,
    data: Path,
    text_col: str = "text",
    label_col: str = "label",
    window: int = 300,
    threads: int = 1,
    seed: int = 0,
) -> Tracking:
    """Run a run's edge bundle over a labelled file (shuffled with ``seed``, as traffic arrives mixed) and track.

    Args:
        run_dir: run folder with an ``edge`` bundle (its temperature calibrates the confidences).
        data: labelled CSV or JSONL, e.g. a held-out test set.
        text_col: its text column.
        label_col: its label column.
        window: answers per window.
        threads: ONNX Runtime threads.
        seed: shuffling seed (files are often sorted by label, which would make windows one class each).

    Raises:
        DataError: the file is unusable, or has labels the edge model never saw (each would count as an error).
    """
    from hybridroute.config import DataConfig  # runtime pieces, loaded only here
    from hybridroute.data import check_known_labels, load_labelled
    from hybridroute.runs import RunLayout
    from hybridroute.runtime.classifier import EdgeClassifier

    labelled = load_labelled(DataConfig(Path(data), text_col, label_col))
    order = np.random.default_rng(seed).permutation(len(labelled.texts))
    edge = EdgeClassifier.from_dir(RunLayout.open(Path(run_dir)).edge, threads=threads)
    check_known_labels(labelled, edge.labels)
    probabilities = edge.predict_proba([labelled.texts[i] for i in order])
    predicted = [edge.labels[i] for i in probabilities.argmax(axis=1)]
    correct = [p == labelled.labels[i] for p, i in zip(predicted, order, strict=True)]
    return tracking(probabilities.max(axis=1), correct, window)
