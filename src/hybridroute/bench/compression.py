"""The compression benchmark: PyTorch FP32 vs ONNX FP32 vs ONNX INT8 vs a TF-IDF baseline.

For each model, in its own spawned child process (so peak memory is that of a
process holding only that model): accuracy and macro-F1 on the test set, peak
RSS after the accuracy pass, single-query end-to-end latency (tokenize + infer +
softmax), and throughput at a fixed batch size with dynamic padding. The two
ONNX models are also timed under the common tutorial protocol (every query
padded to ``tutorial_length`` tokens, only ``session.run`` timed), side by side
in the same run, so the two ways of quoting latency can be compared honestly.

Latency statistics are computed per repeat and the median across repeats is
reported, because a shared machine moves individual passes by ±30%.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import pickle
import queue as queue_module
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hybridroute.bench.interrupt import sigterm_interrupts
from hybridroute.bench.machine import machine_info, machine_summary
from hybridroute.config import DataConfig, check_range, to_jsonable
from hybridroute.data import LabelledTexts, check_known_labels, load_labelled
from hybridroute.errors import ConfigError, HybridError, InferenceError
from hybridroute.metrics import accuracy, macro_f1, percentiles, time_each
from hybridroute.runs import RunLayout, load_saved_split
from hybridroute.runtime.bundle import MODEL_NAME, load_manifest
from hybridroute.runtime.classifier import softmax

logger = logging.getLogger(__name__)

MODEL_NAMES = ("pytorch_fp32", "onnx_fp32", "onnx_int8", "tfidf_logreg")
ONNX_MODELS = ("onnx_fp32", "onnx_int8")
THROUGHPUT_TEXTS = 2048  # enough batches for a stable rate, short enough for a shared 2-core machine
CHILD_POLL_S = 1.0  # how often the parent checks that a silent child is still alive
PROC_STATUS = Path("/proc/self/status")
DEFINITIONS = {
    "accuracy": "top-1 on the test set in batches of batch_size (the ONNX runtime groups each batch by length)",
    "accuracy_single_query": "top-1 with every text inferred alone, as a single query at the edge is",
    "batch_label_changes": "texts whose label differs between the batched and the single-query pass",
    "size_mb": "bytes/1e6 of model.onnx; PyTorch: the classifier's *.safetensors; TF-IDF: pickled pipeline",
    "latency_ms": "one text at a time: tokenize + infer + softmax, after warm-up; median over repeats",
    "tutorial_protocol_latency_ms": "each query padded to tutorial_length tokens, only session.run timed",
    "speedup_vs_tutorial_p95": "tutorial-protocol p95 / end-to-end p95 of the same model",
    "throughput_qps": "min(test, 2048) texts in batches of batch_size, dynamic padding; median over repeats",
    "peak_memory_mb": "VmHWM of a fresh process holding only this model, after load + accuracy pass",
    "size_reduction_pct": "100 x (1 - ONNX INT8 size / ONNX FP32 size)",
    "accuracy_retention_pct": "100 x ONNX INT8 accuracy / ONNX FP32 accuracy; null when FP32 scored 0",
    "speedup_int8_vs_fp32_tutorial_p95": "ONNX FP32 tutorial-protocol p95 / ONNX INT8 end-to-end p95",
}


# ---------------------------------------------------------------- config


@dataclass(frozen=True)
class CompressionBenchConfig:
    """What to benchmark and how hard."""

    run: Path
    test: Path
    text_col: str = "text"
    label_col: str = "label"
    repeats: int = 3  # latency figures are medians over this many passes (the shared machine moves ±30%)
    latency_queries: int = 300  # single-query latency sample size per repeat (after warm-up)
    warmup: int = 20  # queries before timing starts: first calls allocate arenas and fill caches
    batch_size: int = 32  # throughput (and accuracy-pass) batch
    threads: int = 0  # intra-op threads for ORT and torch; 0 = library default
    limit: int = 0  # evaluate on the first N test rows only (0 = full test set); for smoke tests
    tutorial_length: int = 256  # the tutorial's protocol pads every query to this many tokens

    def __post_init__(self) -> None:
        object.__setattr__(self, "run", Path(self.run))
        object.__setattr__(self, "test", Path(self.test))
        check_range("repeats", self.repeats, 1, 100)
        check_range("latency_queries", self.latency_queries, 1, 1_000_000)
        check_range("warmup", self.warmup, 0, 100_000)
        check_range("batch_size", self.batch_size, 1, 4096)
        check_range("threads", self.threads, 0, 1024)
        check_range("limit", self.limit, 0, 100_000_000)
        check_range("tutorial_length", self.tutorial_length, 8, 4096)
        if not self.text_col or not self.label_col:
            raise ConfigError("text_col and label_col must be non-empty column names")
        if self.text_col == self.label_col:
            raise ConfigError(f"text_col and label_col must differ, both are {self.text_col!r}")


def print_status(line: str) -> None:
    """Default progress sink: one line to stderr, flushed at once."""
    print(line, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- pure helpers


def aggregate_repeats(repeats: Sequence[dict[str, float]]) -> dict[str, float]:
    """Median across repeats of each statistic.

    Example: aggregate_repeats([{"p95": 3.0}, {"p95": 1.0}, {"p95": 2.0}]) -> {"p95": 2.0}
    """
    if not repeats:
        raise ValueError("no repeats to aggregate")
    return {key: float(np.median([r[key] for r in repeats])) for key in repeats[0]}


def size_reduction_pct(fp32_mb: float, int8_mb: float) -> float:
    """How much smaller INT8 is than FP32, in percent.

    Example: size_reduction_pct(90.0, 23.0) -> 74.44...
    """
    if fp32_mb <= 0:
        raise ValueError(f"FP32 size must be positive, got {fp32_mb}")
    return 100.0 * (1.0 - int8_mb / fp32_mb)


def accuracy_retention_pct(fp32_accuracy: float, int8_accuracy: float) -> float | None:
    """INT8 accuracy as a percentage of FP32 accuracy; None when FP32 scored 0.

    Example: accuracy_retention_pct(0.90, 0.89) -> 98.88...
    """
    return 100.0 * int8_accuracy / fp32_accuracy if fp32_accuracy > 0 else None


def speedup(reference_ms: float, measured_ms: float) -> float | None:
    """How many times faster ``measured`` is than ``reference``; None for a zero time.

    Example: speedup(20.0, 5.0) -> 4.0
    """
    return reference_ms / measured_ms if measured_ms > 0 else None


def cycled(texts: Sequence[str], count: int, start: int = 0) -> list[str]:
    """``count`` texts taken in order from ``start``, wrapping around.

    Example: cycled(["a", "b", "c"], 4, start=2) -> ["c", "a", "b", "c"]
    """
    return [texts[(start + i) % len(texts)] for i in range(count)]


def pad_to(ids: Sequence[int], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """One query padded (or cut) to exactly ``length`` tokens: (input_ids, attention_mask), shape (1, length).

    Example: pad_to([5, 6], 4, 0) -> ([[5, 6, 0, 0]], [[1, 1, 0, 0]])
    """
    kept = list(ids)[:length]
    input_ids = np.full((1, length), pad_id, dtype=np.int64)
    mask = np.zeros((1, length), dtype=np.int64)
    input_ids[0, : len(kept)] = kept
    mask[0, : len(kept)] = 1
    return input_ids, mask


def kib_to_mb(kib: int) -> float:
    """KiB (``VmHWM``, Linux ``ru_maxrss``) to MB (1e6 bytes), the unit of every size here.

    Example: kib_to_mb(1000) -> 1.024
    """
    return kib * 1024 / 1e6


def parse_vm_hwm_kib(status: str) -> int | None:
    r"""The ``VmHWM`` (peak resident set) of /proc/self/status text, in KiB; None when absent.

    Example: parse_vm_hwm_kib("VmHWM:\t  28068 kB\n") -> 28068
    """
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def folder_weights_mb(folder: Path) -> float:
    """Total size in MB of the ``*.safetensors`` weight files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*.safetensors")) / 1e6


# ---------------------------------------------------------------- predictors


class Predictor(Protocol):
    """What the bench needs from a model: its label order and batch probabilities."""

    labels: tuple[str, ...]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Tokenize (or vectorize), infer and softmax one batch; shape (len(texts), len(labels))."""
        ...


@dataclass
class TorchPredictor:
    """The fine-tuned PyTorch classifier behind its Hugging Face tokenizer."""

    model: Any
    tokenizer: Any
    labels: tuple[str, ...]
    max_length: int

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """HF tokenizer with dynamic padding, a ``torch.no_grad`` forward pass, softmax."""
        import torch

        encoded = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with torch.no_grad():
            logits = self.model(encoded["input_ids"], encoded["attention_mask"])
        return softmax(logits.numpy())


@dataclass
class SklearnPredictor:
    """A fitted scikit-learn text pipeline; ``labels`` in the order of its ``classes_``."""

    pipeline: Any
    labels: tuple[str, ...]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Vectorize and classify one batch."""
        return np.asarray(self.pipeline.predict_proba(list(texts)))


def batched_proba(predictor: Predictor, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """Probabilities for ``texts`` in batches of ``batch_size``, each padded only to its own longest text."""
    chunks = [predictor.predict_proba(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    return np.concatenate(chunks, axis=0)


# ---------------------------------------------------------------- baseline


def build_tfidf_pipeline(seed: int = 13) -> Any:
    """Word 1-2 gram + char_wb 2-5 gram TF-IDF (sublinear tf) into a logistic regression.

    A strong, standard bag-of-n-grams baseline: character n-grams absorb typos and
    inflections that word n-grams miss.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    features = FeatureUnion(
        [
            ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)),
        ]
    )
    # C=10: the TF-IDF rows are L2-normalised, and the default C=1 underfits short texts
    classifier = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)
    return Pipeline([("tfidf", features), ("logreg", classifier)])


def train_tfidf(train: LabelledTexts, out_file: Path) -> float:
    """Fit the baseline on ``train``, pickle it to ``out_file``; return the pickled size in MB."""
    pipeline = build_tfidf_pipeline().fit(list(train.texts), list(train.labels))
    payload = pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL)
    out_file.write_bytes(payload)
    return len(payload) / 1e6


# ---------------------------------------------------------------- one model, inside its child


@dataclass(frozen=True)
class ModelJob:
    """Everything a child process needs to measure one model (picklable)."""

    name: str
    kind: str  # "torch", "onnx" or "sklearn"
    path: Path
    texts: tuple[str, ...]
    labels: tuple[str, ...]
    config: CompressionBenchConfig


def load_predictor(job: ModelJob) -> Predictor:
    """Load the model a job names, with the configured thread count."""
    if job.kind == "onnx":
        from hybridroute.runtime.classifier import EdgeClassifier

        return EdgeClassifier.from_dir(job.path, threads=job.config.threads)
    if job.kind == "torch":
        import torch

        from hybridroute.training.models import load_classifier

        if job.config.threads:
            torch.set_num_threads(job.config.threads)
        model, tokenizer = load_classifier(job.path)
        return TorchPredictor(model, tokenizer, model.spec.labels, model.spec.max_length)
    if job.kind == "sklearn":
        pipeline = pickle.loads(job.path.read_bytes())  # our own file, written by train_tfidf moments ago
        return SklearnPredictor(pipeline, tuple(str(c) for c in pipeline.classes_))
    raise ConfigError(f"unknown model kind {job.kind!r}; expected torch, onnx or sklearn")


def single_query_quality(
    scores: Callable[[Sequence[str]], np.ndarray],
    texts: Sequence[str],
    labels: Sequence[str],
    names: Sequence[str],
    batched: np.ndarray,
) -> dict[str, Any]:
    """Accuracy with every text scored alone, and how many labels differ from the batched pass.

    Dynamic INT8 quantizes activations with one scale per tensor, so a text's answer can
    depend on the texts that share its batch: ``batch_label_changes`` counts the texts whose
    label (index in ``batched``) differs alone (0 for a batch-invariant model).
    """
    single = np.array([int(scores([text])[0].argmax()) for text in texts], dtype=np.int64)
    return {
        "accuracy_single_query": accuracy([names[i] for i in single], labels),
        "batch_label_changes": int((np.asarray(batched) != single).sum()),
    }


def quality(predictor: Predictor, texts: Sequence[str], labels: Sequence[str], batch_size: int) -> dict[str, Any]:
    """Accuracy and macro-F1 in batches of ``batch_size``, and the accuracy one query at a time."""
    batched = batched_proba(predictor, texts, batch_size).argmax(axis=1)
    predicted = [predictor.labels[i] for i in batched]
    return {
        "accuracy": accuracy(predicted, labels),
        "macro_f1": macro_f1(predicted, labels),
        **single_query_quality(predictor.predict_proba, texts, labels, predictor.labels, batched),
    }


def latency_repeats(predictor: Predictor, job: ModelJob, status: Callable[[str], None]) -> list[dict[str, float]]:
    """Single-query end-to-end latency statistics, one dict per repeat, after a warm-up."""
    config = job.config
    time_each(lambda text: predictor.predict_proba([text]), cycled(job.texts, config.warmup))
    queries = cycled(job.texts, config.latency_queries, start=config.warmup)
    stats = []
    for number in range(1, config.repeats + 1):
        status(f"latency repeat {number}/{config.repeats}")
        stats.append(percentiles(time_each(lambda text: predictor.predict_proba([text]), queries)))
    return stats


def throughput_repeats(
    predictor: Predictor,
    job: ModelJob,
    status: Callable[[str], None],
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Queries per second over min(test, 2048) texts in batches, one figure per repeat."""
    texts, config = job.texts[:THROUGHPUT_TEXTS], job.config
    rates = []
    for number in range(1, config.repeats + 1):
        status(f"throughput repeat {number}/{config.repeats} ({len(texts)} texts, batch {config.batch_size})")
        started = clock()
        batched_proba(predictor, texts, config.batch_size)
        rates.append(len(texts) / (clock() - started))
    return rates


def tutorial_feeds(classifier: Any, texts: Sequence[str], length: int) -> list[dict[str, np.ndarray]]:
    """Session inputs for each text padded to ``length`` tokens, built before any timing."""
    names = {i.name for i in classifier.session.get_inputs()}
    feeds = []
    for encoding in classifier.tokenizer.encode_batch(list(texts)):
        input_ids, mask = pad_to(encoding.ids, length, classifier.pad_id)
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        feeds.append(feed)
    return feeds


def tutorial_repeats(classifier: Any, job: ModelJob, status: Callable[[str], None]) -> list[dict[str, float]]:
    """The tutorial protocol: fixed-length padded queries, only ``session.run`` timed, per repeat."""
    config, length = job.config, job.config.tutorial_length
    session = classifier.session
    run = lambda feed: session.run(["logits"], feed)  # noqa: E731 - the timed call, nothing else
    time_each(run, tutorial_feeds(classifier, cycled(job.texts, config.warmup), length))
    feeds = tutorial_feeds(classifier, cycled(job.texts, config.latency_queries, config.warmup), length)
    stats = []
    for number in range(1, config.repeats + 1):
        status(f"tutorial-protocol latency repeat {number}/{config.repeats} ({length} tokens)")
        stats.append(percentiles(time_each(run, feeds)))
    return stats


def peak_rss_mb(status_file: Path = PROC_STATUS) -> float:
    """Peak resident memory of this process so far, in MB.

    Prefers ``VmHWM``: ``ru_maxrss`` of a spawned child starts at its *parent's* peak,
    because Linux folds the pre-exec address space's high-water mark into it at exec.
    Falls back to ``ru_maxrss`` where /proc is missing.
    """
    try:
        kib = parse_vm_hwm_kib(status_file.read_text(encoding="utf-8"))
    except OSError:
        kib = None
    return kib_to_mb(kib if kib is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def measure_model(job: ModelJob, status: Callable[[str], None]) -> dict[str, Any]:
    """Every figure for one model: quality, peak memory, latency, throughput (and the tutorial protocol)."""
    status("loading")
    predictor = load_predictor(job)
    status(f"accuracy on {len(job.texts)} texts (batches of {job.config.batch_size}, then one at a time)")
    result: dict[str, Any] = quality(predictor, job.texts, job.labels, job.config.batch_size)
    result["peak_memory_mb"] = peak_rss_mb()  # model loaded, accuracy pass done, nothing else held
    latency = latency_repeats(predictor, job, status)
    result |= {"latency_ms": aggregate_repeats(latency), "latency_ms_repeats": latency}
    rates = throughput_repeats(predictor, job, status)
    result |= {"throughput_qps": float(np.median(rates)), "throughput_qps_repeats": rates}
    if job.kind == "onnx":
        tutorial = tutorial_repeats(predictor, job, status)
        result |= {
            "tutorial_protocol_latency_ms": aggregate_repeats(tutorial),
            "tutorial_protocol_latency_ms_repeats": tutorial,
        }
    result["peak_memory_mb_all_stages"] = peak_rss_mb()
    return result


# ---------------------------------------------------------------- child processes


def _child_main(job: ModelJob, channel: Any) -> None:
    """Entry point of the spawned child: measure, sending status lines and the result through ``channel``.

    Ctrl-C reaches the child too (it shares the terminal's process group): it then exits quietly, and the
    parent reports the interruption.
    """
    try:
        channel.put(("result", measure_model(job, lambda line: channel.put(("status", line)))))
    except KeyboardInterrupt:
        return
    except HybridError as exc:
        channel.put(("error", exc))
    except Exception as exc:  # anything else would die with the child; carry it to the parent by name
        channel.put(("error", InferenceError(f"{job.name}: {type(exc).__name__}: {exc}")))


def _await_result(process: Any, channel: Any, name: str, progress: Callable[[str], None]) -> dict[str, Any]:
    """Forward the child's status lines until it sends a result (returned) or an error (raised)."""
    while True:
        try:
            kind, payload = channel.get(timeout=CHILD_POLL_S)
        except queue_module.Empty:
            if process.is_alive():
                continue
            try:  # it may have exited right after its last message
                kind, payload = channel.get(timeout=CHILD_POLL_S)
            except queue_module.Empty:
                raise InferenceError(f"{name}: benchmark process died (exit code {process.exitcode})") from None
        if kind == "status":
            progress(payload)
        elif kind == "error":
            raise payload
        else:
            return payload


def run_in_child(job: ModelJob, progress: Callable[[str], None]) -> dict[str, Any]:
    """Measure one model in a fresh spawned process, so its peak memory is its own.

    Interrupted (Ctrl-C, or SIGTERM inside :func:`run_compression_bench`), it stops the child at once: a daemon
    child outlives a parent that is killed before its exit handlers run.
    """
    context = multiprocessing.get_context("spawn")
    channel = context.Queue()
    process = context.Process(target=_child_main, args=(job, channel), name=f"bench-{job.name}", daemon=True)
    process.start()
    try:
        return _await_result(process, channel, job.name, progress)
    except KeyboardInterrupt:
        process.terminate()
        raise
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()
            process.join()


# ---------------------------------------------------------------- orchestration


def load_test_set(config: CompressionBenchConfig, known_labels: Sequence[str]) -> LabelledTexts:
    """The test file (its first ``limit`` rows when set), refusing labels the model never saw."""
    test = load_labelled(DataConfig(config.test, text_col=config.text_col, label_col=config.label_col))
    if config.limit:
        test = test.subset(range(min(config.limit, len(test))))
    check_known_labels(test, known_labels)
    return test


def model_jobs(
    layout: RunLayout, baseline: Path, test: LabelledTexts, config: CompressionBenchConfig
) -> list[ModelJob]:
    """One job per model, in the order of :data:`MODEL_NAMES`."""
    places = (("torch", layout.classifier), ("onnx", layout.onnx_fp32), ("onnx", layout.edge), ("sklearn", baseline))
    return [
        ModelJob(name, kind, path, test.texts, test.labels, config)
        for name, (kind, path) in zip(MODEL_NAMES, places, strict=True)
    ]


def model_sizes_mb(layout: RunLayout) -> dict[str, float]:
    """On-disk size of each neural model: model.onnx, or the classifier's safetensors files."""
    return {
        "pytorch_fp32": folder_weights_mb(layout.classifier),
        "onnx_fp32": (layout.onnx_fp32 / MODEL_NAME).stat().st_size / 1e6,
        "onnx_int8": (layout.edge / MODEL_NAME).stat().st_size / 1e6,
    }


def summarise(models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Headline comparisons: size reduction, accuracy retention, speed-ups over the tutorial protocol."""
    fp32, int8 = models["onnx_fp32"], models["onnx_int8"]
    for name in ONNX_MODELS:
        figures = models[name]
        figures["speedup_vs_tutorial_p95"] = speedup(
            figures["tutorial_protocol_latency_ms"]["p95"], figures["latency_ms"]["p95"]
        )
    return {
        "size_reduction_pct": size_reduction_pct(fp32["size_mb"], int8["size_mb"]),
        "accuracy_retention_pct": accuracy_retention_pct(fp32["accuracy"], int8["accuracy"]),
        "speedup_vs_tutorial_p95": int8["speedup_vs_tutorial_p95"],
        # the deployed INT8 path against a tutorial that serves FP32 with fixed padding
        "speedup_int8_vs_fp32_tutorial_p95": speedup(
            fp32["tutorial_protocol_latency_ms"]["p95"], int8["latency_ms"]["p95"]
        ),
    }


def _prefixed(progress: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda line: progress(prefix + line)


def measure_all(
    layout: RunLayout, test: LabelledTexts, config: CompressionBenchConfig, progress: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """Each model's figures, measured one after another, each in its own child process."""
    sizes = model_sizes_mb(layout)
    models: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hybridroute-bench-") as scratch:
        baseline = Path(scratch) / "tfidf_logreg.pkl"
        for number, job in enumerate(model_jobs(layout, baseline, test, config), start=1):
            report = _prefixed(progress, f"[{number}/{len(MODEL_NAMES)}] {job.name}: ")
            if job.kind == "sklearn":
                train = load_saved_split(layout).train
                report(f"training on the run's {len(train)} training texts")
                sizes[job.name] = train_tfidf(train, baseline)
            models[job.name] = {"size_mb": sizes[job.name]} | run_in_child(job, report)
    models["tfidf_logreg"]["size_method"] = "len(pickle.dumps(fitted pipeline))"
    return models


def _require_run(layout: RunLayout) -> None:
    layout.require(layout.classifier, "finetune")
    layout.require(layout.onnx_fp32 / MODEL_NAME, "compress")
    layout.require(layout.edge / MODEL_NAME, "compress")


def fit_tutorial_length(
    config: CompressionBenchConfig, models: Sequence[Path], progress: Callable[[str], None]
) -> CompressionBenchConfig:
    """``config`` with the tutorial protocol's padding cut to the shortest position table among ``models``.

    A model with 128 positions cannot take 256 tokens; the protocol then pads to 128 and says so.
    """
    import onnx

    from hybridroute.compression.embeddings import position_rows

    rows = [r for r in (position_rows(onnx.load(str(m))) for m in models) if r is not None]
    if not rows or min(rows) >= config.tutorial_length:
        return config
    shortest = min(rows)
    progress(f"the model has {shortest} positions: the tutorial protocol pads to them, not {config.tutorial_length}")
    return replace(config, tutorial_length=shortest)


def run_compression_bench(
    config: CompressionBenchConfig, progress: Callable[[str], None] = print_status
) -> dict[str, Any]:
    """Benchmark the run's PyTorch, ONNX FP32 and ONNX INT8 models and a TF-IDF baseline on the test set.

    Args:
        config: the run folder, test file and measurement settings.
        progress: receives one status line per stage.

    Returns:
        The JSON-ready result: per-model figures under ``models`` plus headline comparisons.

    Raises:
        ArtifactError: a piece of the run is missing (the message names the command to run).
        DataError: the test file is unusable or has labels the model never saw.
    """
    layout = RunLayout.open(config.run)
    _require_run(layout)
    manifest = load_manifest(layout.edge)
    test = load_test_set(config, manifest.labels)
    config = fit_tutorial_length(config, [layout.onnx_fp32 / MODEL_NAME, layout.edge / MODEL_NAME], progress)
    with sigterm_interrupts():  # SIGTERM stops the child and removes the scratch folder, as Ctrl-C does
        models = measure_all(layout, test, config, progress)
    return (
        {"models": models}
        | summarise(models)
        | {
            "test_rows": len(test),
            "machine": machine_info(),
            "settings": to_jsonable(config),
            "run": {
                "model_version": manifest.model_version,
                "labels": len(manifest.labels),
                "max_length": manifest.max_length,
                "base_model": manifest.base_model,
            },
            "definitions": DEFINITIONS,
        }
    )


# ---------------------------------------------------------------- reporting


def _cell(value: float | None, digits: int) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _row(name: str, figures: dict[str, Any]) -> str:
    latency = figures["latency_ms"]
    tutorial = figures.get("tutorial_protocol_latency_ms", {}).get("p95")
    cells = [
        name,
        _cell(100 * figures["accuracy"], 2),
        _cell(100 * figures["accuracy_single_query"], 2),
        str(figures["batch_label_changes"]),
        _cell(figures["macro_f1"], 4),
        _cell(figures["size_mb"], 1),
        _cell(latency["p50"], 2),
        _cell(latency["p95"], 2),
        _cell(latency["p99"], 2),
        _cell(figures["throughput_qps"], 0),
        _cell(figures["peak_memory_mb"], 0),
        _cell(tutorial, 2),
    ]
    return "| " + " | ".join(cells) + " |"


def _footnotes(result: dict[str, Any]) -> list[str]:
    s = result.get("settings", {})
    return [
        f"- Size reduction (INT8 vs ONNX FP32 file): {_cell(result['size_reduction_pct'], 1)}%",
        f"- Accuracy retention (INT8 / ONNX FP32): {_cell(result['accuracy_retention_pct'], 2)}%",
        f"- Speed-up vs tutorial protocol (INT8, p95 padded to {s.get('tutorial_length', '?')} tokens with "
        f"session.run only / p95 end-to-end): {_cell(result['speedup_vs_tutorial_p95'], 2)}×",
        f"- Test rows: {result.get('test_rows', '?')}; latency: median over {s.get('repeats', '?')} "
        f"repeats of {s.get('latency_queries', '?')} single queries; "
        f"throughput at batch {s.get('batch_size', '?')}",
        f"- Machine: {machine_summary(result.get('machine', {}))}",
    ]


def markdown_table(result: dict[str, Any]) -> str:
    """The benchmark as a Markdown table, one row per model, then the headline comparisons."""
    header = (
        "| Model | Accuracy % | Single-query acc. % | Batch-changed | Macro-F1 | Size MB | p50 ms | p95 ms "
        "| p99 ms | Throughput q/s | Peak MB | Tutorial-protocol p95 ms |"
    )
    rows = [_row(name, figures) for name, figures in result["models"].items()]
    return "\n".join([header, "|" + "---|" * 12, *rows, "", *_footnotes(result)])
