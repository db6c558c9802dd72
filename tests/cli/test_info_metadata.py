"""info and export on hand-edited files: a corrupt checkpoint field, a state dict that does
not fit its config, or ONNX metadata of the wrong JSON type is one `error:` line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch
from helpers import TINY, assert_one_line_error, run


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "m.pt"
    r = run(["train", *TINY, "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def exported(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("onnx")
    r = run(["export", str(trained), "--format", "dense", "--verify-data", "random", "--out-dir", str(out_dir), "-q"])
    assert r.exit_code == 0, r.output
    return out_dir / "m.onnx"


def edited_checkpoint(src: Path, dst: Path, where: tuple[Any, ...], value: Any) -> Path:
    d = torch.load(src, weights_only=True)
    parent = d
    for key in where[:-1]:
        parent = parent[key]
    parent[where[-1]] = value
    torch.save(d, dst)
    return dst


CORRUPT_FIELDS = [
    (("task",), None, "task must be a dict"),
    (("metrics",), "abc", "metrics must be a dict"),
    (("provenance",), [1], "provenance must be a dict"),
    (("training",), None, "training must be a dict"),
    (("regularizer",), "x", "regularizer must be a dict"),
    (("masks",), [1], "masks must be a dict"),
    (("state_dict",), "x", "state_dict must be a dict"),
    (("history",), ["abc"], "history[0] must be a dict of str -> number"),
    (("resume",), "x", "resume must be a dict"),
    (("metrics", "test_mse"), "x", "metrics['test_mse'] must be a number; got 'x' (str)"),
    (("history", 0, "val_loss"), None, "history[0]['val_loss'] must be a number; got None"),
    (("task", "params"), [6], "task['params'] must be a dict"),
]


@pytest.mark.parametrize("command", ["info", "export"])
@pytest.mark.parametrize("where, value, message", CORRUPT_FIELDS)
def test_a_corrupt_checkpoint_field_is_one_line(trained: Path, tmp_path: Path, command: str, where, value,
                                                message: str) -> None:
    bad = edited_checkpoint(trained, tmp_path / "bad.pt", where, value)
    out_dir = tmp_path / "onnx"
    args = [command, str(bad)] + (["--out-dir", str(out_dir)] if command == "export" else [])
    assert_one_line_error(run(args), match=f"Checkpoint {bad} is corrupt: {message}")
    assert not out_dir.exists() or not any(out_dir.iterdir())  # export wrote nothing


@pytest.mark.parametrize("command", ["info", "export"])
def test_a_state_dict_that_does_not_fit_names_the_first_mismatch(trained: Path, tmp_path: Path, command: str) -> None:
    bad = edited_checkpoint(trained, tmp_path / "bad.pt", ("config", "hidden_sizes"), [7])
    args = [command, str(bad)] + (["--out-dir", str(tmp_path / "onnx")] if command == "export" else [])
    assert_one_line_error(run(args), match="does not match its model config: state_dict['rnn.0.weight_ih_l0'] has "
                                           "shape (24, 2) where the config makes (28, 2) (and 4 more mismatches).")


def edited_onnx(src: Path, dst: Path, key: str, value: str | None) -> Path:
    """A copy of ``src`` whose metadata ``rnncompress.{key}`` is ``value`` (None: removed)."""
    model = onnx.load(src)
    props = {p.key: p.value for p in model.metadata_props}
    props[f"rnncompress.{key}"] = value
    props = {k: v for k, v in props.items() if v is not None}
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    onnx.save(model, dst)
    return dst


@pytest.mark.parametrize("as_json", [[], ["--json"]])
@pytest.mark.parametrize("key", ["model_config", "task", "sparsity", "session_config", "interface"])
@pytest.mark.parametrize("value, shown", [("[1, 2]", "[1, 2]"), ("3", "3"), ("null", "null"), ("not json", "not json")])
def test_onnx_metadata_that_is_not_a_json_object_is_one_line(exported: Path, tmp_path: Path, as_json, key: str,
                                                             value: str, shown: str) -> None:
    bad = edited_onnx(exported, tmp_path / "bad.onnx", key, value)
    assert_one_line_error(run(["info", str(bad), *as_json]),
                          match=f"{bad} has corrupt rnncompress metadata: rnncompress.{key} must be a JSON object; "
                                f"got {shown}.")


def test_onnx_sparsity_that_is_not_a_number_is_one_line(exported: Path, tmp_path: Path) -> None:
    bad = edited_onnx(exported, tmp_path / "bad.onnx", "sparsity", json.dumps({"recurrent": "x", "overall": 0.5}))
    assert_one_line_error(run(["info", str(bad)]), match="rnncompress.sparsity's 'recurrent' must be a fraction in [0, 1]; got x.")


@pytest.mark.parametrize("key", ["verified", "version", "metric_value", "int8_float_below"])
def test_odd_scalar_onnx_metadata_is_shown_not_refused(exported: Path, tmp_path: Path, key: str) -> None:
    bad = edited_onnx(exported, tmp_path / "odd.onnx", key, "[1]")
    r = run(["info", str(bad)])
    assert r.exit_code == 0, r.output
    assert "inputs:" in r.output and "ops:" in r.output


UNMAKEABLE = ("interface: unavailable (The model records a task this rnncompress cannot make (a damaged or edited "
              "file, or a newer version's): ")


@pytest.mark.parametrize("task, shown", [
    ({"name": "charlm", "params": {"data": "/nonexistent/text.txt"}}, "interface: unavailable (Text file "),
    ({"name": "chess", "params": {}}, UNMAKEABLE + "The 'task' parameter must be one of"),
    ({"name": "adding", "params": {"seq_len": "ten"}}, UNMAKEABLE + "The 'seq_len' parameter"),
    ({"name": "adding", "params": {"no such": 1}}, UNMAKEABLE + "Task 'adding' has no parameter"),
])
def test_the_interface_a_service_needs_is_shown_or_said_unavailable(exported: Path, tmp_path: Path, task,
                                                                    shown: str) -> None:
    r = run(["info", str(exported)])
    assert r.exit_code == 0, r.output
    assert "interface (what a service feeding the ONNX file needs, stored in the file;" in r.output
    assert "  x: per step 2 float32, a value in [0, 1) and a marker" in r.output
    d = json.loads(run(["info", str(exported), "--json"]).stdout)
    assert d["interface"]["output"].startswith("y after the last step: the sum of the two marked values")
    assert d["interface_source"] == "file" and "interface" not in d["metadata"]  # once, not twice
    # An export that stores no interface (an older one): derived from the task it records.
    older = edited_onnx(exported, tmp_path / "older.onnx", "interface", None)
    r = run(["info", str(older)])
    assert r.exit_code == 0, r.output
    assert "interface (what a service feeding the ONNX file needs;" in r.output
    assert json.loads(run(["info", str(older), "--json"]).stdout)["interface"] == d["interface"]
    odd = edited_onnx(older, tmp_path / "odd.onnx", "task", json.dumps(task))
    r = run(["info", str(odd)])
    assert r.exit_code == 0, r.output
    assert shown in r.output


def test_info_json_is_strict_json_when_a_metric_is_not_finite(trained: Path, tmp_path: Path) -> None:
    odd = edited_checkpoint(trained, tmp_path / "nan.pt", ("metrics", "test_mse"), float("nan"))
    r = run(["info", str(odd), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert d["metrics"]["test_mse"] is None


def test_info_shows_a_checkpoint_with_nan_weights_and_warns(trained: Path, tmp_path: Path) -> None:
    d = torch.load(trained, weights_only=True)
    name = next(k for k in d["state_dict"] if "weight_hh" in k)
    odd = edited_checkpoint(trained, tmp_path / "nan.pt", ("state_dict", name),
                            torch.full_like(d["state_dict"][name], float("nan")))
    r = run(["info", str(odd)])
    assert r.exit_code == 0, r.output
    assert r.stderr.strip() == f"warning: NaN or Inf values in {name}: prune, export and bench refuse this checkpoint."
    assert json.loads(run(["info", str(odd), "--json"]).stdout)["not_finite"] == [name]
    assert json.loads(run(["info", str(trained), "--json"]).stdout)["not_finite"] == []
    plain = run(["info", str(trained)])
    assert "warning" not in plain.stderr
    # (trained without a space or a sparsity target: no inhibitor or schedule to show)
    assert "regularizer: none\nmagnitude pruning: none\n" in plain.stdout


def test_a_plain_pickle_is_one_line_without_torch_warnings(tmp_path: Path) -> None:
    import pickle
    import warnings

    from models.checkpoint import load_checkpoint
    from models.errors import CheckpointError

    bad = tmp_path / "p.pt"
    bad.write_bytes(pickle.dumps({"a": 1}))  # protocol 4: torch warns about it on stderr, above our line
    assert_one_line_error(run(["info", str(bad)]), match=f"Checkpoint {bad}")
    with warnings.catch_warnings(record=True) as caught, pytest.raises(CheckpointError, match="not a torch"):
        warnings.simplefilter("always")
        load_checkpoint(bad)
    assert [str(w.message) for w in caught] == []


def test_data_for_a_task_that_generates_its_data_is_refused(trained: Path, tmp_path: Path) -> None:
    assert_one_line_error(run(["info", str(trained), "--data", str(tmp_path)]),
                          match="--data does not apply to task 'adding': it generates its data from a seed")
