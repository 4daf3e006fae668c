from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hybridroute.config import (
    AdaptConfig,
    CompressConfig,
    DataConfig,
    FinetuneConfig,
    build_train_sections,
    check_choice,
    check_positive,
    check_probability,
    check_range,
    config_from_dict,
    load_json_config,
    to_jsonable,
    train_sections,
)
from hybridroute.errors import ConfigError, HybridError

# ---------------------------------------------------------------- checks


def test_check_range_message_names_field_value_and_range() -> None:
    with pytest.raises(ConfigError) as info:
        check_range("epochs", 0, 1, 100)
    assert str(info.value) == "epochs must be in [1, 100], got 0"


@pytest.mark.parametrize("value", [1, 50, 100, 1.0, 99.5])
def test_check_range_accepts_inclusive_bounds(value: float) -> None:
    check_range("epochs", value, 1, 100)


@pytest.mark.parametrize("value", [0.999, 100.001, -5, float("nan"), float("inf")])
def test_check_range_rejects_outside(value: float) -> None:
    with pytest.raises(ConfigError, match=r"^x must be in \[1, 100\], got "):
        check_range("x", value, 1, 100)


def test_config_error_is_a_hybrid_error() -> None:
    with pytest.raises(HybridError):
        check_positive("lr", 0)


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_check_probability_accepts(value: float) -> None:
    check_probability("dropout", value)


@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan")])
def test_check_probability_rejects_with_message(value: float) -> None:
    with pytest.raises(ConfigError) as info:
        check_probability("dropout", value)
    message = str(info.value)
    assert message.startswith("dropout must be in [0.0, 1.0], got ")
    assert repr(value) in message


@pytest.mark.parametrize("value", [1e-12, 1, 3.5])
def test_check_positive_accepts(value: float) -> None:
    check_positive("max_logit_diff", value)


@pytest.mark.parametrize("value", [0, 0.0, -1e-9, float("nan")])
def test_check_positive_rejects_with_message(value: float) -> None:
    with pytest.raises(ConfigError) as info:
        check_positive("max_logit_diff", value)
    assert str(info.value) == f"max_logit_diff must be > 0, got {value!r}"


def test_check_choice_accepts_member_of_any_iterable() -> None:
    check_choice("pooling", "cls", iter(["mean", "cls"]))


def test_check_choice_rejects_with_message_listing_choices() -> None:
    with pytest.raises(ConfigError) as info:
        check_choice("pooling", "max", ("mean", "cls"))
    assert str(info.value) == "pooling must be one of mean, cls; got 'max'"


# ---------------------------------------------------------------- dataclasses


def test_defaults_are_valid() -> None:
    DataConfig(Path("x.csv"))
    AdaptConfig()
    FinetuneConfig()
    CompressConfig()


def test_data_config_coerces_path() -> None:
    config = DataConfig("some/file.csv")  # type: ignore[arg-type]
    assert isinstance(config.path, Path)
    assert config.path == Path("some/file.csv")


BAD_VALUES: list[tuple[type, str, Any]] = [
    (DataConfig, "val_fraction", 0.0),
    (DataConfig, "val_fraction", 0.009),
    (DataConfig, "val_fraction", 0.51),
    (AdaptConfig, "epochs", -0.5),
    (AdaptConfig, "epochs", 0.0),  # would still train one batch: --no-adapt skips adaptation
    (AdaptConfig, "epochs", 101.0),
    (AdaptConfig, "seed", -1),
    (DataConfig, "seed", -1),
    (DataConfig, "seed", 2**32),
    (FinetuneConfig, "seed", -5),
    (AdaptConfig, "max_length", 7),
    (AdaptConfig, "max_length", 513),
    (AdaptConfig, "mlm_probability", 0.0),
    (AdaptConfig, "mlm_probability", 0.95),
    (AdaptConfig, "batch_size", 0),
    (AdaptConfig, "batch_size", 4097),
    (AdaptConfig, "learning_rate", 0.0),
    (AdaptConfig, "learning_rate", 2.0),
    (AdaptConfig, "max_texts", 9),
    (AdaptConfig, "heldout_fraction", 0.0),
    (AdaptConfig, "heldout_fraction", 0.6),
    (FinetuneConfig, "head_epochs", -1),
    (FinetuneConfig, "head_epochs", 1001),
    (FinetuneConfig, "epochs", -1),
    (FinetuneConfig, "epochs", 1001),
    (FinetuneConfig, "head_learning_rate", 0.0),
    (FinetuneConfig, "learning_rate", 1.5),
    (FinetuneConfig, "warmup_ratio", -0.1),
    (FinetuneConfig, "warmup_ratio", 0.6),
    (FinetuneConfig, "weight_decay", -0.1),
    (FinetuneConfig, "weight_decay", 1.1),
    (FinetuneConfig, "label_smoothing", -0.1),
    (FinetuneConfig, "label_smoothing", 0.51),
    (FinetuneConfig, "batch_size", 0),
    (FinetuneConfig, "max_length", 4),
    (FinetuneConfig, "patience", 0),
    (FinetuneConfig, "pooling", "max"),
    (FinetuneConfig, "dropout", -0.1),
    (FinetuneConfig, "dropout", 1.1),
    (CompressConfig, "opset", 13),
    (CompressConfig, "opset", 24),
    (CompressConfig, "max_accuracy_drop", -0.01),
    (CompressConfig, "max_accuracy_drop", 1.5),
    (CompressConfig, "min_parity_agreement", 1.01),
    (CompressConfig, "max_logit_diff", 0.0),
    (CompressConfig, "max_logit_diff", -1e-3),
    (CompressConfig, "parity_samples", 0),
    (CompressConfig, "smoothing_texts", 0),
]


def _build(cls: type, **values: Any) -> Any:
    if cls is DataConfig:
        return cls(Path("data.csv"), **values)
    return cls(**values)


@pytest.mark.parametrize(
    ("cls", "field", "value"), BAD_VALUES, ids=[f"{c.__name__}.{f}={v!r}" for c, f, v in BAD_VALUES]
)
def test_each_field_rejects_a_bad_value(cls: type, field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        _build(cls, **{field: value})
    message = str(info.value)
    assert message.startswith(f"{field} must be ")
    assert repr(value) in message


GOOD_EDGES: list[tuple[type, str, Any]] = [
    (DataConfig, "val_fraction", 0.01),
    (DataConfig, "val_fraction", 0.5),
    (AdaptConfig, "epochs", 0.01),
    (AdaptConfig, "max_length", 8),
    (DataConfig, "seed", 0),
    (DataConfig, "seed", 2**32 - 1),
    (AdaptConfig, "max_length", 512),
    (FinetuneConfig, "head_epochs", 0),
    (FinetuneConfig, "epochs", 0),
    (FinetuneConfig, "pooling", "cls"),
    (CompressConfig, "opset", 14),
    (CompressConfig, "opset", 23),
    (CompressConfig, "max_accuracy_drop", 0.0),
]


@pytest.mark.parametrize(
    ("cls", "field", "value"), GOOD_EDGES, ids=[f"{c.__name__}.{f}={v!r}" for c, f, v in GOOD_EDGES]
)
def test_boundary_values_are_accepted(cls: type, field: str, value: Any) -> None:
    config = _build(cls, **{field: value})
    assert getattr(config, field) == value


@pytest.mark.parametrize(("text_col", "label_col"), [("", "label"), ("text", "")])
def test_data_config_rejects_empty_column_names(text_col: str, label_col: str) -> None:
    with pytest.raises(ConfigError, match="non-empty"):
        DataConfig(Path("d.csv"), text_col=text_col, label_col=label_col)


def test_data_config_rejects_same_columns() -> None:
    with pytest.raises(ConfigError, match="must differ, both are 'x'"):
        DataConfig(Path("d.csv"), text_col="x", label_col="x")


def test_finetune_rejects_nothing_to_train() -> None:
    with pytest.raises(ConfigError, match="nothing would be trained"):
        FinetuneConfig(head_epochs=0, epochs=0)


def test_configs_are_frozen() -> None:
    config = AdaptConfig()
    with pytest.raises(AttributeError):
        config.epochs = 3  # type: ignore[misc]


def test_to_jsonable_turns_paths_into_strings() -> None:
    values = to_jsonable(DataConfig(Path("a/b.csv"), seed=7))
    assert values["path"] == str(Path("a/b.csv"))
    assert values["seed"] == 7
    json.dumps(values)  # must not raise


# ---------------------------------------------------------------- config_from_dict


def test_config_from_dict_builds() -> None:
    config = config_from_dict(AdaptConfig, {"epochs": 2, "batch_size": 8})
    assert config == AdaptConfig(epochs=2, batch_size=8)


def test_config_from_dict_rejects_unknown_keys_naming_them_and_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(AdaptConfig, {"epochs": 2, "epoch": 3, "lr": 1e-4})
    message = str(info.value)
    assert "unknown AdaptConfig keys ['epoch', 'lr']" in message
    assert "known keys:" in message
    assert "'epochs'" in message
    assert "'learning_rate'" in message


def test_config_from_dict_validates_values() -> None:
    with pytest.raises(ConfigError, match="epochs must be in"):
        config_from_dict(AdaptConfig, {"epochs": -1})


def test_config_from_dict_turns_type_errors_into_config_errors() -> None:
    with pytest.raises(ConfigError, match="invalid DataConfig"):
        config_from_dict(DataConfig, {"seed": 1})  # path is required
    with pytest.raises(ConfigError, match="invalid AdaptConfig"):
        config_from_dict(AdaptConfig, {"epochs": "two"})


# ---------------------------------------------------------------- files


def test_load_json_config_reads_object(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"adapt": {"epochs": 2}}', encoding="utf-8")
    assert load_json_config(path) == {"adapt": {"epochs": 2}}


def test_load_json_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_json_config(path)
    assert str(path) in str(info.value)


def test_load_json_config_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_json_config(tmp_path)
    assert str(info.value) == f"config file {tmp_path} is a folder; a JSON file is expected"


def test_load_json_config_skips_a_utf8_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"adapt": {"epochs": 2}}')  # as Notepad saves "UTF-8 with BOM"
    assert load_json_config(path) == {"adapt": {"epochs": 2}}
    assert build_train_sections(path, {})[0].epochs == 2


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ('{"adapt": {"epochs": 2}, "adapt": {"epochs": 3}}', "adapt"),
        ('{"finetune": {"epochs": 2, "batch_size": 8, "epochs": 9}}', "epochs"),
        ('{"cloud_per_query": 0.02, "cloud_per_query": 0.2}', "cloud_per_query"),
    ],
)
def test_load_json_config_refuses_a_key_given_twice_naming_it(tmp_path: Path, content: str, key: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_json_config(path)
    assert str(info.value).startswith(f"config file {path}: key {key!r} appears 2 times in one object")


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe\x00garbage"])
def test_load_json_config_invalid_json(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="is not valid JSON"):
        load_json_config(path)


@pytest.mark.parametrize(("content", "kind"), [("[1, 2]", "list"), ("3", "int"), ('"x"', "str"), ("null", "NoneType")])
def test_load_json_config_non_object(tmp_path: Path, content: str, kind: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=f"must hold a JSON object, got {kind}"):
        load_json_config(path)


def _write(tmp_path: Path, values: Any) -> Path:
    path = tmp_path / "train.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


def test_build_train_sections_defaults_without_file() -> None:
    adapt, finetune, compress = build_train_sections(None, {})
    assert (adapt, finetune, compress) == (AdaptConfig(), FinetuneConfig(), CompressConfig())


def test_build_train_sections_reads_file(tmp_path: Path) -> None:
    path = _write(tmp_path, {"adapt": {"epochs": 2}, "finetune": {"epochs": 8, "learning_rate": 5e-5}})
    adapt, finetune, compress = build_train_sections(path, {})
    assert adapt.epochs == 2
    assert finetune.epochs == 8
    assert finetune.learning_rate == 5e-5
    assert compress == CompressConfig()


def test_build_train_sections_unknown_section(tmp_path: Path) -> None:
    path = _write(tmp_path, {"adapt": {}, "quantize": {}, "bench": {}})
    with pytest.raises(ConfigError) as info:
        build_train_sections(path, {})
    message = str(info.value)
    assert "unknown config sections ['bench', 'quantize']" in message
    assert "['adapt', 'compress', 'finetune']" in message


@pytest.mark.parametrize(("value", "kind"), [([1], "list"), (3, "int"), ("x", "str")])
def test_build_train_sections_non_object_section(tmp_path: Path, value: Any, kind: str) -> None:
    path = _write(tmp_path, {"finetune": value})
    with pytest.raises(ConfigError, match=f"config section 'finetune' must be an object, got {kind}"):
        build_train_sections(path, {})


def test_build_train_sections_unknown_key_inside_section(tmp_path: Path) -> None:
    path = _write(tmp_path, {"compress": {"opsett": 17}})
    with pytest.raises(ConfigError, match=r"unknown CompressConfig keys \['opsett'\]"):
        build_train_sections(path, {})


def test_build_train_sections_overrides_win_over_file(tmp_path: Path) -> None:
    path = _write(tmp_path, {"adapt": {"epochs": 2, "batch_size": 8}, "finetune": {"epochs": 8}})
    adapt, finetune, _ = build_train_sections(path, {"adapt": {"epochs": 5.0}, "finetune": {"patience": 2}})
    assert adapt.epochs == 5.0
    assert adapt.batch_size == 8  # file value kept where not overridden
    assert finetune.epochs == 8
    assert finetune.patience == 2


def test_build_train_sections_none_overrides_are_ignored(tmp_path: Path) -> None:
    path = _write(tmp_path, {"adapt": {"epochs": 2}})
    adapt, finetune, compress = build_train_sections(
        path, {"adapt": {"epochs": None, "batch_size": None}, "compress": {"opset": None}}
    )
    assert adapt.epochs == 2
    assert adapt.batch_size == AdaptConfig().batch_size
    assert compress.opset == CompressConfig().opset


@pytest.mark.parametrize(
    ("section", "values", "flags", "message"),
    [
        ("finetune", {"epochs": 2.5}, {"epochs": 1}, r"epochs must be an integer, got 2\.5 \(float\)"),
        ("finetune", {"batch_size": 0}, {"batch_size": 16}, r"batch_size must be in \[1, 4096\], got 0"),
        ("adapt", {"epochs": "two"}, {"epochs": 1.0}, r"epochs must be a finite number, got 'two'"),
        ("adapt", {"base_model": 7}, {"base_model": "minilm"}, r"base_model must be a string, got 7"),
    ],
)
def test_build_train_sections_refuses_a_bad_file_value_that_a_flag_replaces(
    tmp_path: Path, section: str, values: dict[str, Any], flags: dict[str, Any], message: str
) -> None:
    path = _write(tmp_path, {section: values})
    with pytest.raises(ConfigError, match=f"config section {section!r}: .*{message}"):
        build_train_sections(path, {section: flags})


def test_the_cloud_tiers_sections_refuse_a_bad_file_value_that_a_flag_replaces() -> None:
    from hybridroute.workflow import cloud_finetune_defaults

    defaults = {"finetune": cloud_finetune_defaults()}
    with pytest.raises(ConfigError, match=r"config section 'finetune': .*epochs must be an integer, got 2\.5"):
        train_sections({"finetune": {"epochs": 2.5}}, {"finetune": {"epochs": 1}}, defaults)
    _, finetune, _ = train_sections({"finetune": {"epochs": 2}}, {"finetune": {"epochs": 1}}, defaults)
    assert finetune.epochs == 1  # a good file value is still replaced by the flag


def test_build_train_sections_validates_overrides() -> None:
    with pytest.raises(ConfigError, match="batch_size must be in"):
        build_train_sections(None, {"finetune": {"batch_size": 0}})


# ---------------------------------------------------------------- value types from config files


WRONG_TYPES: list[tuple[str, str, Any, str]] = [
    ("compress", "per_channel", "false", "true or false"),
    ("compress", "quantize_embeddings", 0, "true or false"),
    ("finetune", "epochs", 2.5, "an integer"),
    ("finetune", "epochs", True, "an integer"),
    ("finetune", "head_epochs", None, "an integer"),
    ("finetune", "batch_size", 7.9, "an integer"),
    ("finetune", "max_length", 63.5, "an integer"),
    ("finetune", "seed", "abc", "an integer"),
    ("finetune", "learning_rate", "1e-4", "a finite number"),
    ("finetune", "pooling", 1, "a string"),
    ("adapt", "epochs", True, "a finite number"),
    ("adapt", "base_model", 123, "a string"),
    ("compress", "max_logit_diff", float("inf"), "a finite number"),
    ("compress", "max_accuracy_drop", float("nan"), "a finite number"),
]


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"), WRONG_TYPES, ids=[f"{s}.{k}={v!r}" for s, k, v, _ in WRONG_TYPES]
)
def test_config_file_values_of_the_wrong_type_are_refused_by_section_and_key(
    section: str, key: str, value: Any, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        train_sections({section: {key: value}}, {})
    message = str(info.value)
    assert message.startswith(f"config section {section!r}: invalid ")
    assert f"{key} must be {expected}, got {value!r} ({type(value).__name__})" in message


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("adapt", "epochs", 2),
        ("adapt", "epochs", 0.5),
        ("finetune", "learning_rate", 1),
        ("compress", "per_channel", False),
    ],
)
def test_config_file_values_of_the_right_type_are_accepted(section: str, key: str, value: Any) -> None:
    configs = dict(zip(("adapt", "finetune", "compress"), train_sections({section: {key: value}}, {}), strict=True))
    assert getattr(configs[section], key) == value


def test_config_from_dict_checks_optional_and_list_fields() -> None:
    from hybridroute.routing.features import FeatureConfig
    from hybridroute.routing.router_config import ValidationMetrics

    assert config_from_dict(FeatureConfig, {"escalation_keywords": ["refund"]}).escalation_keywords == ("refund",)
    with pytest.raises(ConfigError, match=r"escalation_keywords must be a list of strings, got 'refund' \(str\)"):
        config_from_dict(FeatureConfig, {"escalation_keywords": "refund"})
    with pytest.raises(ConfigError, match=r"uncertainty_words must be a list of strings, got \['a', 1\]"):
        config_from_dict(FeatureConfig, {"uncertainty_words": ["a", 1]})
    metrics = {"n": 3, "edge_accuracy": 0.5, "expected_cloud_share": 0.1}
    assert config_from_dict(ValidationMetrics, metrics | {"cloud_accuracy": None}).cloud_accuracy is None
    with pytest.raises(ConfigError, match="cloud_accuracy must be a finite number or null, got '0.9'"):
        config_from_dict(ValidationMetrics, metrics | {"cloud_accuracy": "0.9"})


def test_config_from_dict_accepts_a_string_path() -> None:
    assert config_from_dict(DataConfig, {"path": "d.csv"}).path == Path("d.csv")
    with pytest.raises(ConfigError, match=r"path must be a path \(a string\), got 3"):
        config_from_dict(DataConfig, {"path": 3})


def test_adapt_epochs_zero_is_refused_pointing_to_no_adapt() -> None:
    with pytest.raises(ConfigError, match=r"epochs must be in \[0\.01, 100\.0\], got 0; .*train --no-adapt"):
        AdaptConfig(epochs=0)
