"""Every task's data has the stated shapes; bad data gets a clear DataError."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import make_mnist_dir, write_idx
from models.errors import ConfigError, DataError
from models.sequence import SequenceModel
from models.tasks import make_task
from compressor.training import model_config_for


def check_model_runs(task, data) -> None:
    model = SequenceModel(model_config_for(data, "gru", 8, 1))
    b = data.val.take(slice(0, 4))
    out = model(b.x, b.init)
    assert torch.isfinite(task.loss(out, b))
    s, c = task.metric_sums(out, b)
    assert c > 0 and np.isfinite(s)
    assert task.finite_metric_sums(out, b) == (s, c)
    nan = out.detach().clone()
    nan.view(-1)[0] = float("nan")  # one NaN output: the metric is no number, whatever metric_sums makes of it
    s, c = task.finite_metric_sums(nan, b)
    assert np.isnan(s) and c > 0


@pytest.mark.parametrize("gz", [True, False])
def test_smnist_shapes(tmp_path: Path, gz: bool) -> None:
    d = make_mnist_dir(tmp_path / "m", n_train=200, n_test=50, gz=gz)
    task = make_task("smnist", {"data": str(d), "val_size": 20})
    data = task.load()
    assert data.train.x.shape == (180, 28, 28) and data.train.x.dtype == torch.float32
    assert data.val.x.shape == (20, 28, 28) and data.test.x.shape == (50, 28, 28)
    assert data.train.y.dtype == torch.int64 and int(data.train.y.max()) <= 9
    check_model_runs(task, data)


def test_smnist_permutation_is_fixed_and_a_permutation(mnist_dir: Path) -> None:
    plain = make_task("smnist", {"data": str(mnist_dir), "val_size": 20}).load().test.x
    perm = make_task("smnist", {"data": str(mnist_dir), "val_size": 20, "permute": True}).load().test.x
    again = make_task("smnist", {"data": str(mnist_dir), "val_size": 20, "permute": True}).load().test.x
    assert torch.equal(perm, again) and not torch.equal(plain, perm)
    assert torch.equal(plain.reshape(len(plain), -1).sort(1).values, perm.reshape(len(perm), -1).sort(1).values)


def test_real_mnist_shapes(shared_mnist: Path) -> None:
    data = make_task("smnist", {"data": str(shared_mnist)}).load()
    assert data.train.x.shape == (55000, 28, 28) and data.test.x.shape == (10000, 28, 28)
    assert torch.bincount(data.test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_adding_shapes_and_baseline() -> None:
    task = make_task("adding", {"seq_len": 30, "samples": 4000, "data_seed": 1})
    data = task.load()
    assert data.train.x.shape == (4000, 30, 2) and data.train.y.shape == (4000, 1)
    assert torch.all(data.train.x[:, :, 1].sum(1) == 2)
    assert float(((data.train.y - 1.0) ** 2).mean()) == pytest.approx(1 / 6, abs=0.01)
    again = make_task("adding", {"seq_len": 30, "samples": 4000, "data_seed": 1}).load()
    assert torch.equal(data.train.x, again.train.x)
    check_model_runs(task, data)


def test_navigation_shapes_and_metric() -> None:
    task = make_task("navigation", {"seq_len": 10, "samples": 50, "val_samples": 10, "test_samples": 10})
    data = task.load()
    assert data.train.x.shape == (50, 10, 2) and data.train.y.shape == (50, 10, 2)
    assert data.train.init.shape == (50, 256)
    assert torch.allclose(data.train.init.sum(-1), torch.full((50,), 256.0), atol=1e-2)
    assert torch.all(data.train.y.abs() <= 1.1)
    assert data.spec.init_size == 256 and data.spec.head == "every" and data.spec.nonlinearity == "relu"
    # A perfect place code decodes close to the truth: the metric is in cm.
    code = task.cells.code(data.test.y)
    s, c = task.metric_sums(torch.log(code + 1e-9), data.test)
    assert c == 100 and s / c < 10.0
    check_model_runs(task, data)


def test_navigation_velocity_integrates_to_positions() -> None:
    from models.tasks.navigation import random_walks

    start, pos, vel = random_walks(20, 15, 2.2, 0.02, np.random.default_rng(0))
    assert np.allclose(start[:, None] + np.cumsum(vel, axis=1), pos)
    assert np.all(np.abs(pos) <= 1.1)


def test_charlm_shapes(text_file: Path) -> None:
    task = make_task("charlm", {"data": str(text_file), "seq_len": 20})
    data = task.load()
    assert data.train.x.shape[1] == 20 and data.train.x.dtype == torch.int64
    assert torch.equal(data.train.x[0, 1:], data.train.y[0, :-1])
    assert data.spec.input_layer == "embedding" and data.spec.output_size == data.info["vocab"]
    check_model_runs(task, data)


def test_charlm_reads_gzip(tmp_path: Path) -> None:
    p = tmp_path / "t.txt.gz"
    p.write_bytes(gzip.compress(("abcdefg hij " * 200).encode()))
    assert make_task("charlm", {"data": str(p), "seq_len": 10}).load().info["vocab"] == 11


# ------------------------------------------------------------- interface (for a service)
# What `info` tells a service without rnncompress must rebuild exactly the inputs the model
# was trained and verified on, from the raw data and the interface's tables alone.


@pytest.mark.parametrize("permute", [False, True])
def test_smnist_interface_rebuilds_the_inputs_from_raw_pixels(tmp_path: Path, permute: bool) -> None:
    from models.tasks.smnist import load_mnist

    d = make_mnist_dir(tmp_path / "m", n_train=60, n_test=20)
    task = make_task("smnist", {"data": str(d), "val_size": 10, "permute": permute})
    ifc = task.interface()
    raw = load_mnist(str(d))["test_images"].reshape(-1, 784).astype(np.float64)
    v = (raw / 255 - ifc["mean"]) / ifc["std"]
    if permute:
        assert sorted(ifc["pixel_permutation"]) == list(range(784))
        v = v[:, ifc["pixel_permutation"]]
    else:
        assert "pixel_permutation" not in ifc
    assert np.allclose(v.reshape(-1, 28, 28), task.load().test.x.numpy(), atol=1e-5)


def test_charlm_interface_vocabulary_encodes_the_text(text_file: Path) -> None:
    task = make_task("charlm", {"data": str(text_file), "seq_len": 20})
    vocab = task.interface()["vocabulary"]
    data = task.load()
    text = text_file.read_text()
    ids = [vocab.index(c) for c in text[: data.train.x.shape[1] + 1]]
    assert data.train.x[0].tolist() == ids[:-1] and len(vocab) == data.spec.output_size
    text_file.unlink()  # the vocabulary comes from the text: unreadable, a DataError naming it
    with pytest.raises(DataError, match=str(text_file)):
        task.interface()


def test_navigation_interface_decodes_positions_as_the_metric_does() -> None:
    task = make_task("navigation", {"seq_len": 6, "samples": 8, "val_samples": 4, "test_samples": 4,
                                    "place_cells": 16})
    ifc = task.interface()
    centres = np.array(ifc["place_cell_centres"])
    assert centres.shape == (16, 2) and np.abs(centres).max() <= ifc["box"] / 2
    logits = torch.randn(4, 6, 16)
    top = logits.topk(3, dim=-1).indices.numpy()
    assert np.allclose(centres[top].mean(-2), task.cells.decode(logits).numpy(), atol=1e-6)
    d2 = ((task.load().test.y[:, :1, None, :].numpy() - centres) ** 2).sum(-1)
    code = np.exp(-d2 / (2 * ifc["sigma"] ** 2))
    assert np.allclose(code / code.sum(-1, keepdims=True), task.cells.code(task.load().test.y[:, :1]).numpy(),
                       atol=1e-5)


@pytest.mark.parametrize("name, params", [("adding", {}), ("npz", {"data": "x.npz"})])
def test_every_task_describes_its_input_and_output(name: str, params: dict) -> None:
    ifc = make_task(name, params).interface()
    assert ifc["input"].startswith("x") and ifc["output"].startswith("y")


def test_npz_classification_and_regression(tmp_path: Path, npz_file: Path) -> None:
    task = make_task("npz", {"data": str(npz_file)})
    data = task.load()
    assert task.metric_name == "accuracy" and data.spec.input_size == 3 and data.spec.output_size == 2
    assert len(data.train) + len(data.val) + len(data.test) == 120
    check_model_runs(task, data)
    p = tmp_path / "reg.npz"
    rng = np.random.default_rng(0)
    np.savez(p, X=rng.normal(size=(40, 5, 2)).astype(np.float32), y=rng.normal(size=(40, 3)),
             X_test=rng.normal(size=(10, 5, 2)).astype(np.float32), y_test=rng.normal(size=(10, 3)))
    task = make_task("npz", {"data": str(p)})
    data = task.load()
    assert task.metric_name == "mse" and data.spec.output_size == 3 and len(data.test) == 10
    check_model_runs(task, data)
    rebuilt = make_task("npz", {"data": str(p)})  # as prune and the pipeline rebuild it: not loaded
    assert (rebuilt.metric_name, rebuilt.higher_is_better, rebuilt.outputs_logits) == ("mse", False, False)
    tok = tmp_path / "tok.npz"
    np.savez(tok, X=rng.integers(0, 7, size=(30, 6)), y=rng.integers(0, 3, size=30))
    task = make_task("npz", {"data": str(tok)})
    data = task.load()
    assert data.spec.input_layer == "embedding" and data.spec.input_size == 7
    check_model_runs(task, data)
    assert make_task("npz", {"data": str(tok)}).metric_name == "accuracy"


def test_npz_kind_is_read_from_the_file_even_compressed_or_broken(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    z = tmp_path / "z.npz"
    np.savez_compressed(z, X=rng.normal(size=(8, 4, 2)).astype(np.float32), y=rng.normal(size=8).astype(np.float16))
    assert make_task("npz", {"data": str(z)}).metric_name == "mse"
    no_y = tmp_path / "no_y.npz"
    np.savez(no_y, X=rng.normal(size=(8, 4, 2)).astype(np.float32))
    with pytest.raises(DataError, match="has no array 'y'"):
        make_task("npz", {"data": str(no_y)}).metric_name
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK not a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        make_task("npz", {"data": str(junk)}).metric_name


# ------------------------------------------------------------------ bad input
def corrupt_gzip(d: Path) -> None:
    f = d / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:100])


def bad_magic(d: Path) -> None:
    (d / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x12\x34\x56\x78" + b"\x00" * 20))


def truncated_raw(d: Path) -> None:
    (d / "t10k-images-idx3-ubyte.gz").unlink()
    imgs = np.zeros((100, 28, 28), dtype=np.uint8)
    p = write_idx(d / "t10k-images-idx3-ubyte", imgs, gz=False)
    p.write_bytes(p.read_bytes()[:-50])


def wrong_count(d: Path) -> None:
    write_idx(d / "t10k-labels-idx1-ubyte", np.zeros(7, dtype=np.uint8))


def wrong_image_shape(d: Path) -> None:
    write_idx(d / "train-images-idx3-ubyte", np.zeros((300, 14, 14), dtype=np.uint8))


@pytest.mark.parametrize("damage, match", [
    (lambda d: (d / "t10k-labels-idx1-ubyte.gz").unlink(), "incomplete: missing t10k-labels-idx1-ubyte"),
    (corrupt_gzip, "corrupt or truncated"),
    (bad_magic, "bad magic number"),
    (truncated_raw, "truncated or corrupt"),
    (wrong_count, "do not match"),
    (wrong_image_shape, "expected \\(N, 28, 28\\)"),
])
def test_bad_mnist_directory(mnist_dir: Path, damage, match: str) -> None:
    damage(mnist_dir)
    with pytest.raises(DataError, match=match):
        make_task("smnist", {"data": str(mnist_dir)}).load()


def test_missing_mnist_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        make_task("smnist", {"data": str(tmp_path / "nope")}).load()
    with pytest.raises(DataError, match="needs a data directory"):
        make_task("smnist", {}).load()


def npz_with(tmp_path: Path, **arrays) -> Path:
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    return p


F32 = np.zeros((10, 4, 2), dtype=np.float32)
Y = np.zeros(10, dtype=np.int64)


@pytest.mark.parametrize("arrays, match", [
    ({"y": Y}, "no array 'X'"),
    ({"X": F32}, "no array 'y'"),
    ({"X": np.zeros((10, 4)), "y": Y}, "must hold integer tokens"),
    ({"X": np.zeros((10, 4, 2), dtype=np.int32), "y": Y}, "must be float"),
    ({"X": np.zeros((10,), dtype=np.float32), "y": Y}, "must have shape"),
    ({"X": F32, "y": np.zeros(9, dtype=np.int64)}, "N = 10"),
    ({"X": F32, "y": np.zeros((10, 2), dtype=np.int64)}, "class labels"),
    ({"X": np.full((10, 4, 2), np.nan, dtype=np.float32), "y": Y}, "NaN or Inf"),
    ({"X": F32, "y": np.full(10, np.inf)}, "NaN or Inf"),
    ({"X": F32, "y": np.array(["a"] * 10)}, "must be int"),
    ({"X": F32, "y": Y, "X_test": F32}, "both X_test and y_test"),
    ({"X": F32, "y": Y, "X_test": np.zeros((5, 4, 3), np.float32), "y_test": Y[:5]}, "does not match X"),
    ({"X": -np.ones((10, 4), dtype=np.int64), "y": Y}, "negative token"),
    ({"X": F32, "y": np.full(10, 10**9)}, "labels must be 0..K-1 with K <= 1,000,000"),
    ({"X": np.full((10, 4), 10**9), "y": Y}, "ids must be 0..V-1 with V <= 1,000,000"),
    ({"X": np.zeros((10, 4, 0), np.float32), "y": Y}, r"X has no features \(shape \(10, 4, 0\): F = 0\)"),
    ({"X": F32[:2], "y": Y[:2]}, r"bad.npz: 2 sample\(s\) in X; at least 3 are needed \(one each for training, "
                                 r"validation and test\)"),
    ({"X": F32[:1], "y": Y[:1], "X_test": F32, "y_test": Y}, r"1 sample\(s\) in X; at least 2 are needed \(one each "
                                                             r"for training, validation\)"),
])
def test_bad_npz(tmp_path: Path, arrays, match: str) -> None:
    with pytest.raises(DataError, match=match):
        make_task("npz", {"data": str(npz_with(tmp_path, **arrays))}).load()


def test_corrupt_and_pickled_npz(tmp_path: Path) -> None:
    p = tmp_path / "junk.npz"
    p.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="not a readable .npz"):
        make_task("npz", {"data": str(p)}).load()
    p.write_bytes(b"PK not a zip at all")  # numpy would try to unpickle it: not "object arrays"
    with pytest.raises(DataError, match="not a readable .npz"):
        make_task("npz", {"data": str(p)}).load()
    np.savez(p)  # an empty archive
    with pytest.raises(DataError, match="holds no arrays"):
        make_task("npz", {"data": str(p)}).load()
    q = tmp_path / "obj.npz"
    np.savez(q, X=np.array([{"a": 1}] * 3, dtype=object), y=Y[:3])
    with pytest.raises(DataError, match="pickled data is refused"):
        make_task("npz", {"data": str(q)}).load()
    text = tmp_path / "notes.npz"
    text.write_text("X,y\n1,2\n")
    with pytest.raises(DataError, match="is not an .npz file"):
        make_task("npz", {"data": str(text)}).load()
    single = tmp_path / "x.npz"
    with open(single, "wb") as f:
        np.save(f, Y)
    with pytest.raises(DataError, match="is a single .npy array"):
        make_task("npz", {"data": str(single)}).load()


def test_bad_text_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        make_task("charlm", {"data": str(tmp_path / "none.txt")}).load()
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)  # opening it would block: refused before any read
    with pytest.raises(DataError, match="pipe.txt is not a regular file"):
        make_task("charlm", {"data": str(fifo)}).load()
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9 ".encode("latin-1") * 500)
    with pytest.raises(DataError, match="not UTF-8"):
        make_task("charlm", {"data": str(latin)}).load()
    short = tmp_path / "short.txt"
    short.write_text("abc")
    with pytest.raises(DataError, match="too short"):
        make_task("charlm", {"data": str(short)}).load()
    gz = tmp_path / "broken.txt.gz"
    gz.write_bytes(gzip.compress(b"hello world " * 100)[:30])
    with pytest.raises(DataError, match="cannot be read"):
        make_task("charlm", {"data": str(gz)}).load()


def test_unknown_task_and_parameter() -> None:
    with pytest.raises(ConfigError, match="'task' parameter must be one of"):
        make_task("imagenet")
    with pytest.raises(ConfigError, match="has no parameter 'lenght'"):
        make_task("adding", {"lenght": 5})
    with pytest.raises(ConfigError, match="'params' parameter must be a dict of the task's parameters. Got 'list'"):
        make_task("adding", [("seq_len", 5)])


@pytest.mark.parametrize("name, params, match", [
    ("adding", {"data_seed": -1}, "'data_seed' parameter must be an int in [0, 4294967295]. Got -1"),
    ("navigation", {"data_seed": -5}, "'data_seed' parameter must be an int in [0, 4294967295]"),
    ("npz", {"split_seed": 2**40}, "'split_seed' parameter must be an int in [0, 4294967295]"),
    ("smnist", {"permute_seed": -1}, "'permute_seed' parameter"),
    ("smnist", {"split_seed": -1}, "'split_seed' parameter"),
    ("navigation", {"box": float("inf")}, "'box' parameter must be a positive float up to 10000. Got inf"),
    ("navigation", {"box": 1e308}, "'box' parameter"),
    ("navigation", {"sigma": float("inf")}, "'sigma' parameter"),
    ("navigation", {"dt": float("nan")}, "'dt' parameter"),
    ("charlm", {"embed_dim": 0}, "'embed_dim' parameter must be a positive int"),
    ("npz", {"embed_dim": -5}, "'embed_dim' parameter must be a positive int"),
])
def test_parameters_that_would_fail_deep_in_loading_are_refused_when_given(name: str, params: dict,
                                                                           match: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(match)):
        make_task(name, params)


@pytest.mark.parametrize("name, params", [
    ("navigation", {"place_cells": 10_000_000}),
    ("adding", {"samples": 10**12}),
])
def test_generated_data_too_large_for_the_machine_is_refused_before_generating(name: str, params: dict) -> None:
    with pytest.raises(DataError, match="more than half of this machine's"):
        make_task(name, params).load()
