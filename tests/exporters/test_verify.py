"""The float32 parity rule: |onnx - torch| <= atol + rtol * |torch|, element by element."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporters.verify import Parity, _fp32_parity


def _pair(ref: np.ndarray, diff: np.ndarray) -> dict:
    return {"data": [(ref + diff, ref)]}


def test_absolute_only_when_rtol_is_zero():
    ref = np.array([[100.0, 0.0]])
    assert _fp32_parity(_pair(ref, np.array([[0.9e-5, 0.0]])), 1e-5, 0.0).passed
    assert not _fp32_parity(_pair(ref, np.array([[1.1e-5, 0.0]])), 1e-5, 0.0).passed


def test_relative_part_scales_with_the_reference():
    ref = np.array([[10.0, 0.1]])
    # 1e-5 + 1e-6 * 10 = 2e-5 allowed on the large output ...
    assert _fp32_parity(_pair(ref, np.array([[1.9e-5, 0.0]])), 1e-5, 1e-6).passed
    # ... but not on the small one, which gets only 1e-5 + 1e-7.
    bad = _fp32_parity(_pair(ref, np.array([[0.0, 1.9e-5]])), 1e-5, 1e-6)
    assert not bad.passed
    assert bad.error == pytest.approx(1.9e-5)
    assert "1e-05 + 1e-06*|y|" in bad.describe()


def test_nan_and_shape_mismatch_fail():
    ref = np.zeros((2, 3))
    assert not _fp32_parity(_pair(ref, np.full((2, 3), np.nan)), 1e-5, 1e-6).passed
    assert not _fp32_parity({"data": [(np.zeros((2, 2)), ref)]}, 1e-5, 1e-6).passed


@pytest.mark.parametrize("order", ["nan first", "nan last"])
def test_a_nan_anywhere_fails_whatever_comes_after_it(order: str):
    ref = np.ones((2, 2))
    bad = ref.copy()
    bad[1, 0] = np.nan
    sets = {"good": [(ref, ref)], "bad": [(bad, ref)]}
    if order == "nan first":
        sets = {"bad": sets["bad"], "good": sets["good"]}
    p = _fp32_parity(sets, 1e-5, 1e-6)
    assert not p.passed and p.detail == "bad"
    assert not np.isfinite(p.error) and not np.isfinite(p.excess)


def test_worst_names_the_tightest_input_set():
    ref = np.ones((1, 2))
    p = _fp32_parity({"a": [(ref + 1e-6, ref)], "b": [(ref + 5e-6, ref)]}, 1e-5, 0.0)
    assert p.detail == "b" and p.passed


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=1, max_size=20), st.floats(0, 1e-4), st.floats(0, 1e-5))
def test_rule_matches_elementwise_allclose(values, atol, rtol):
    ref = np.array(values)
    got = ref + np.linspace(-3e-5, 3e-5, len(values))
    expected = bool(np.all(np.abs(got - ref) <= atol + rtol * np.abs(ref)))
    assert _fp32_parity({"x": [(got, ref)]}, atol, rtol).passed == expected


@pytest.mark.parametrize("error, words", [(0.0, "unchanged"), (-0.05, "better by 0.05"), (0.3, "worse by 0.3")])
def test_metric_parity_says_which_way_it_moved(error, words):
    p = Parity("metric", error, 0.5, "task test data (16)", "accuracy 98.1% vs torch 98.2%")
    points = words if error == 0 else words + " points"
    assert f"({points}; tolerance 0.5 points worse)" in p.describe()
    assert p.short().startswith("accuracy " + words.replace(" by", "")) and p.short().endswith("tol 0.5")
    assert p.passed == (error <= 0.5)


def test_a_relative_metric_change_is_given_in_percent():
    # error and tolerance are fractions of the torch metric: not in the metric's own units
    p = Parity("metric", 0.00035, 0.05, "task test data (16)", "mse 1.3233 vs torch 1.3228")
    assert "(worse by 0.035% (relative); tolerance 5% worse)" in p.describe()


@pytest.mark.parametrize("raw, message", [
    ("[ONNXRuntimeError] : 1 : FAIL : Load model from m.onnx failed:/onnxruntime_src/onnxruntime/core/graph/model.cc:180 "
     "onnxruntime::Model::Model(onnx::ModelProto&&, const PathString&, const onnxruntime::ModelOptions&) Unsupported "
     "model IR version: 14, max supported IR version: 13",
     "Load model from m.onnx failed: Unsupported model IR version: 14, max supported IR version: 13"),
    ("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input: x\nPlease fix either the inputs",
     "Got invalid dimensions for input: x"),
    # (parentheses that are no C++ signature stay)
    ('[ONNXRuntimeError] : 10 : INVALID_GRAPH : This is an invalid model. In Node, ("", Foo, "", -1) : Error No Op',
     'This is an invalid model. In Node, ("", Foo, "", -1) : Error No Op'),
    ("", "RuntimeError"),
])
def test_onnxruntime_errors_lose_their_prefix_and_cpp_signature(raw, message):
    from exporters.verify import ort_error_text

    assert ort_error_text(RuntimeError(raw)) == message


def test_a_file_onnxruntime_cannot_load_is_named_and_its_log_stays_quiet(tmp_path, capfd):
    """A graph onnxruntime refuses while initializing (it logs at error severity on stderr
    itself): one error naming the file, and nothing else on stderr."""
    import onnx
    from onnx import TensorProto, helper

    from exporters.verify import make_session
    from models.errors import ExportError

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([], "empty", [x], [], [onnx.numpy_helper.from_array(np.ones(2, np.float32), "w")])
    path = tmp_path / "empty.onnx"
    onnx.save(helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ExportError, match=f"^onnxruntime cannot load {path}: ") as e:
        make_session(path)
    assert "onnxruntime_src" not in str(e.value) and "[ONNXRuntimeError]" not in str(e.value)
    assert capfd.readouterr().err == ""
