"""Base models: only packaged names and model folders are accepted; max_length must fit the positions."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import BertConfig, MPNetConfig

from hybridroute.config import AdaptConfig, FinetuneConfig
from hybridroute.data import LabelledTexts, Split
from hybridroute.errors import ArtifactError, ConfigError
from hybridroute.training.models import (
    CLASSIFIER_FILE,
    load_pretrained,
    position_limit,
    read_classifier_spec,
    resolve_base_model,
)


@pytest.mark.parametrize("name", ["minlm", "sentence-transformers/all-MiniLM-L6-v2", "bert-base-uncased"])
def test_a_name_that_is_neither_packaged_nor_a_folder_is_refused_without_the_network(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(ConfigError, match=r"does not exist; give a packaged model \(minilm, mpnet\)"):
        resolve_base_model(name)


def test_a_model_folder_passes_through(tiny_bert: Path) -> None:
    assert resolve_base_model(str(tiny_bert)) == str(tiny_bert)


def test_the_position_limit_leaves_out_the_offset_of_roberta_style_models() -> None:
    assert position_limit(BertConfig(max_position_embeddings=128)) == 128
    assert position_limit(MPNetConfig(max_position_embeddings=514, pad_token_id=1)) == 512


def _split() -> Split:
    data = LabelledTexts(tuple(f"text {i}" for i in range(4)), ("a", "b") * 2)
    return Split(data, data, ("a", "b"))


def test_finetune_refuses_a_max_length_beyond_the_encoders_positions(tiny_bert: Path, tmp_path: Path) -> None:
    from hybridroute.training.finetune import finetune

    with pytest.raises(ConfigError, match="finetune max_length 256 exceeds the 128 token positions"):
        finetune(_split(), str(tiny_bert), FinetuneConfig(max_length=256), tmp_path / "classifier", progress=False)
    assert not (tmp_path / "classifier").exists()


def test_adaptation_refuses_a_max_length_beyond_the_encoders_positions(tiny_bert: Path, tmp_path: Path) -> None:
    from hybridroute.training.mlm import adapt

    config = AdaptConfig(base_model=str(tiny_bert), max_length=256)
    with pytest.raises(ConfigError, match="adapt max_length 256 exceeds the 128 token positions"):
        adapt([f"some text {i}" for i in range(20)], config, tmp_path / "adapted", progress=False)
    assert not (tmp_path / "adapted").exists()


def test_a_model_folder_without_tokenizer_files_is_refused(tiny_bert: Path, tmp_path: Path) -> None:
    import shutil

    from hybridroute.errors import ArtifactError
    from hybridroute.training.models import TOKENIZER_FILES, load_tokenizer

    half = tmp_path / "adapted"
    shutil.copytree(tiny_bert, half, ignore=shutil.ignore_patterns(*TOKENIZER_FILES, "special_tokens_map.json"))
    with pytest.raises(ArtifactError, match="holds no tokenizer"):
        load_tokenizer(str(half))


@pytest.mark.parametrize("content", ["not json", '{"pooling": "mean"}', '{"labels": ["a"], "unknown": 1}'])
def test_an_unreadable_classifier_spec_is_an_artifact_error_naming_it(tmp_path: Path, content: str) -> None:
    (tmp_path / CLASSIFIER_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(ArtifactError, match=rf"{CLASSIFIER_FILE}: cannot read the classifier's spec"):
        read_classifier_spec(tmp_path)


def test_a_folder_without_a_classifier_spec_holds_no_classifier(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="holds no fine-tuned classifier"):
        read_classifier_spec(tmp_path)


def test_loading_under_another_head_logs_one_line_not_the_load_report_table(
    tiny_bert: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from transformers import AutoModelForMaskedLM

    caplog.set_level("INFO", logger="hybridroute.training.models")
    model = load_pretrained(AutoModelForMaskedLM, str(tiny_bert))  # the tiny BERT has no masked-LM head

    assert type(model).__name__ == "BertForMaskedLM"
    err = capfd.readouterr().err
    assert "LOAD REPORT" not in err and "not sharded" not in err, err
    [line] = [r.getMessage() for r in caplog.records if r.name == "hybridroute.training.models"]
    assert "freshly initialised cls.predictions" in line and "unused pooler.dense" in line
