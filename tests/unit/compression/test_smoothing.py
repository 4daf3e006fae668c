"""Activation smoothing before dynamic INT8: the simulation against ONNX Runtime, and the graph rewrite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from hybridroute.compression.smoothing import (
    SMOOTH_SUFFIX,
    ActivationSample,
    SmoothingReport,
    choose,
    fake_quantize_activation,
    fake_quantize_weight,
    smooth_file,
    smooth_model,
    smoothable_inputs,
)

WIDTH, OUT = 16, 8


def _run(model: onnx.ModelProto | Path, x: np.ndarray) -> list[np.ndarray]:
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return [np.asarray(v) for v in session.run(None, {"x": x})]


def _outlier_inputs(rng: np.random.Generator, texts: int = 6, tokens: int = 5) -> list[np.ndarray]:
    """Activations like a BERT LayerNorm output: channel 3 runs about 30x larger than the rest."""
    scale = np.ones(WIDTH, dtype=np.float32)
    scale[3] = 30.0
    return [(rng.standard_normal((1, tokens, WIDTH)) * scale).astype(np.float32) for _ in range(texts)]


def _model(rng: np.random.Generator, shared_weight: bool = False) -> onnx.ModelProto:
    """``x`` feeds two MatMuls (like query and key) and a residual Add, as a BERT LayerNorm output does."""
    w1 = numpy_helper.from_array((rng.standard_normal((WIDTH, OUT)) * 0.1).astype(np.float32), "w1")
    w2 = numpy_helper.from_array((rng.standard_normal((WIDTH, OUT)) * 0.1).astype(np.float32), "w2")
    second = "w1" if shared_weight else "w2"
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["y1"], name="first"),
        helper.make_node("MatMul", ["x", second], ["y2"], name="second"),
        helper.make_node("Add", ["x", "x"], ["residual"], name="residual"),
    ]
    dims = ["batch", "tokens"]
    graph = helper.make_graph(
        nodes,
        "outliers",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [*dims, WIDTH])],
        [
            helper.make_tensor_value_info("y1", TensorProto.FLOAT, [*dims, OUT]),
            helper.make_tensor_value_info("y2", TensorProto.FLOAT, [*dims, OUT]),
            helper.make_tensor_value_info("residual", TensorProto.FLOAT, [*dims, WIDTH]),
        ],
        [w1, w2],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _quantized(model: onnx.ModelProto, folder: Path, name: str) -> Path:
    source, target = folder / f"{name}_fp32.onnx", folder / f"{name}_int8.onnx"
    onnx.save(model, str(source))
    quantize_dynamic(
        str(source), str(target), weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"]
    )
    return target


def _feeds(inputs: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    return [{"x": x} for x in inputs]


# ---------------------------------------------------------------- the simulation is what ONNX Runtime does


def test_simulated_int8_matches_onnxruntime_dynamic_quantization(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    model = _model(rng)
    int8 = _quantized(model, tmp_path, "plain")
    weight = numpy_helper.to_array(model.graph.initializer[0])
    for x in _outlier_inputs(rng, texts=3):
        rows = x.reshape(-1, WIDTH)
        simulated = fake_quantize_activation(rows, np.array([0])) @ fake_quantize_weight(weight)
        actual = _run(int8, x)[0].reshape(-1, OUT)
        exact = rows @ weight
        assert np.abs(actual - exact).max() > 1e-3  # INT8 really differs from FP32 here ...
        np.testing.assert_allclose(simulated, actual, atol=1e-4)  # ... and the simulation reproduces it


def test_activation_scale_is_per_call() -> None:
    small, large = np.full((2, 4), 0.5, np.float32), np.full((3, 4), 50.0, np.float32)
    both = fake_quantize_activation(np.vstack([small, large]), np.array([0, 2]))
    np.testing.assert_allclose(both[:2], small, atol=0.5 / 255)  # its own scale, not the large call's
    np.testing.assert_allclose(both[2:], large, atol=50.0 / 255)


# ---------------------------------------------------------------- the rewrite


def test_smoothing_keeps_the_fp32_function_and_the_residual(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    model, inputs = _model(rng), _outlier_inputs(rng)
    before = [_run(model, x) for x in inputs]
    report = smooth_model(model, _feeds(inputs))
    assert report.to_dict()["smoothed"] == 1
    for x, expected in zip(inputs, before, strict=True):
        for got, want in zip(_run(model, x), expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    (add,) = [n for n in model.graph.node if n.op_type == "Add"]
    assert list(add.input) == ["x", "x"]  # the residual still gets the unscaled activation
    assert {n.input[0] for n in model.graph.node if n.op_type == "MatMul"} == {"x" + SMOOTH_SUFFIX}
    onnx.checker.check_model(model)


def test_smoothing_lowers_the_real_int8_error_on_outlier_channels(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    model, inputs = _model(rng), _outlier_inputs(rng, texts=12)
    plain = _quantized(model, tmp_path, "plain")
    fp32 = [_run(model, x) for x in inputs]
    smooth_model(model, _feeds(inputs[:6]))  # calibrated on half, scored on the other half
    smoothed = _quantized(model, tmp_path, "smoothed")

    def error(int8: Path) -> float:
        return float(np.mean([(_run(int8, x)[0] - want[0]) ** 2 for x, want in zip(inputs[6:], fp32[6:], strict=True)]))

    assert error(smoothed) < 0.5 * error(plain)


def test_a_weight_used_twice_is_left_alone() -> None:
    model = _model(np.random.default_rng(3), shared_weight=True)
    assert smoothable_inputs(model) == {}
    report = smooth_model(model, _feeds(_outlier_inputs(np.random.default_rng(3))))
    assert report.choices == ()
    assert not any(n.name.endswith("SmoothMul") for n in model.graph.node)


def test_choice_never_worse_than_plain_and_none_when_nothing_helps() -> None:
    rng = np.random.default_rng(4)
    weight = (np.sign(rng.standard_normal((WIDTH, OUT))) * 0.1).astype(np.float32)  # every row's range equal too
    flat = ActivationSample()
    for _ in range(4):
        flat.add(np.ones((1, 5, WIDTH), np.float32), max_rows=100)  # every channel equal: nothing to flatten
    choice, scales = choose("x", flat, weight)
    assert choice.alpha is None and scales is None and choice.error_chosen == choice.error_plain
    outliers = ActivationSample()
    for x in _outlier_inputs(rng):
        outliers.add(x, max_rows=100)
    choice, scales = choose("x", outliers, weight)
    assert choice.alpha is not None and scales is not None and choice.error_chosen < choice.error_plain


def test_sample_keeps_rows_up_to_its_cap_but_every_maximum() -> None:
    sample = ActivationSample()
    sample.add(np.ones((1, 3, 2), np.float32), max_rows=4)
    sample.add(np.full((1, 3, 2), 7.0, np.float32), max_rows=4)  # over the cap: maxima only
    assert sample.kept_rows == 3 and len(sample.rows) == 1
    np.testing.assert_array_equal(sample.absmax, [7.0, 7.0])


def test_report_summarises_choices_for_the_manifest(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    source, target = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(_model(rng), str(source))
    report = smooth_file(source, target, _feeds(_outlier_inputs(rng)))
    summary = report.to_dict()
    assert summary["method"] == "smoothquant" and summary["calibration_calls"] == 6
    assert summary["activations"] == 1 and summary["smoothed"] == 1 and set(summary["alphas"]) == {"x"}
    assert summary["median_relative_error_smoothed"] < summary["median_relative_error_plain"]
    assert any(n.name.endswith("SmoothMul") for n in onnx.load(str(target)).graph.node)
    assert SmoothingReport(0, ()).to_dict()["median_relative_error_plain"] is None


def test_smoothing_needs_calibration_feeds() -> None:
    with pytest.raises(ValueError, match="at least one calibration text"):
        smooth_model(_model(np.random.default_rng(6)), [])


def _attention_model(rng: np.random.Generator) -> onnx.ModelProto:
    """A fused ``Attention`` node (packed Q/K/V weight, two heads) beside a residual Add, as the optimizer makes it."""
    weight = numpy_helper.from_array((rng.standard_normal((WIDTH, 3 * WIDTH)) * 0.1).astype(np.float32), "qkv")
    bias = numpy_helper.from_array(np.zeros(3 * WIDTH, np.float32), "qkv_bias")
    nodes = [
        helper.make_node("Attention", ["x", "qkv", "qkv_bias"], ["context"], domain="com.microsoft", num_heads=2),
        helper.make_node("Add", ["x", "context"], ["y"], name="residual"),
    ]
    dims = ["batch", "tokens", WIDTH]
    graph = helper.make_graph(
        nodes,
        "fused",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
        [weight, bias],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets)


def test_a_fused_attention_weight_is_smoothed_and_the_function_kept() -> None:
    rng = np.random.default_rng(7)
    model, inputs = _attention_model(rng), _outlier_inputs(rng)
    before = [_run(model, x)[0] for x in inputs]
    assert [n.op_type for n in smoothable_inputs(model)["x"]] == ["Attention"]
    assert smooth_model(model, _feeds(inputs)).to_dict()["smoothed"] == 1
    (attention,) = [n for n in model.graph.node if n.op_type == "Attention"]
    assert attention.input[0] == "x" + SMOOTH_SUFFIX
    for x, want in zip(inputs, before, strict=True):
        np.testing.assert_allclose(_run(model, x)[0], want, rtol=1e-4, atol=1e-4)
