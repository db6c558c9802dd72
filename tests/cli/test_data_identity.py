"""A model's metric is computed on the data it was trained on: --data pointing at other files
(another text means another vocabulary) is refused by prune, export and bench; a moved or
renamed copy of the same files is accepted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import assert_one_line_error, run

TEXT = "In the beginning was the word, and the word was with the model. " * 40


@pytest.fixture(scope="module")
def charlm(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("charlm")
    (d / "a.txt").write_text(TEXT)
    r = run(["train", "--task", "charlm", "--data", str(d / "a.txt"), "--seq-len", "16", "--hidden", "4",
             "--epochs", "1", "--out", str(d / "m.pt"), "-q"])
    assert r.exit_code == 0, r.output
    return d / "m.pt"


def _commands(ckpt: Path, data: Path, out: Path) -> dict[str, list[str]]:
    return {"prune": ["prune", str(ckpt), "--keep", "2", "--finetune-epochs", "0", "--data", str(data),
                      "--out", str(out / "p.pt"), "-q"],
            "export": ["export", str(ckpt), "--format", "dense", "--data", str(data), "--out-dir", str(out / "o"), "-q"],
            "bench": ["bench", str(ckpt), "--runs", "3", "--warmup", "0", "--data", str(data),
                      "--out-dir", str(out / "b"), "-q"]}


@pytest.mark.parametrize("command", ["prune", "export", "bench"])
def test_other_data_is_refused_and_a_copy_accepted(charlm: Path, tmp_path: Path, command: str) -> None:
    other = tmp_path / "b.txt"
    other.write_text("Completely different characters: 0123456789 {}[]<>~^ " * 40)
    r = run(_commands(charlm, other, tmp_path)[command])
    assert_one_line_error(r, match=f"The data at {other} is not the data {charlm} was trained on")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt"]
    copy = tmp_path / "moved" / "renamed.txt"
    copy.parent.mkdir()
    shutil.copy(charlm.parent / "a.txt", copy)
    r = run(_commands(charlm, copy, tmp_path)[command])
    assert r.exit_code == 0, r.output


def test_an_exported_model_records_its_data_and_bench_checks_it(charlm: Path, tmp_path: Path) -> None:
    r = run(["export", str(charlm), "--format", "dense", "--out-dir", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 0, r.output
    other = tmp_path / "b.txt"
    other.write_text("Other text entirely. " * 80)
    r = run(["bench", str(tmp_path / "o" / "m.onnx"), "--runs", "3", "--warmup", "0", "--data", str(other),
             "--out-dir", str(tmp_path / "b"), "-q"])
    assert_one_line_error(r, match="is not the data")


def test_tokens_beyond_the_vocabulary_are_a_data_error(charlm: Path, tmp_path: Path) -> None:
    """A checkpoint that recorded no data hashes, given a text with more characters than its
    vocabulary: one line, not onnxruntime's Gather index error."""
    import torch

    raw = torch.load(charlm, weights_only=True)
    raw["provenance"].pop("data_sha256")
    torch.save(raw, tmp_path / "old.pt")
    wide = tmp_path / "wide.txt"
    wide.write_text("".join(chr(c) for c in range(0x400, 0x480)) * 20)
    for args in (["export", "--format", "dense", "--out-dir", str(tmp_path / "o")],
                 ["bench", "--runs", "3", "--out-dir", str(tmp_path / "b")]):
        r = run([args[0], str(tmp_path / "old.pt"), *args[1:], "--data", str(wide), "-q"])
        assert_one_line_error(r, match="does not fit the model")


def test_the_refusal_names_the_files_whose_content_is_missing(tmp_path: Path) -> None:
    import gzip

    from helpers import make_mnist_dir
    from models.errors import DataError
    from models.tasks import make_task

    recorded = make_task("smnist", {"data": str(make_mnist_dir(tmp_path / "a"))}).data_hashes()
    copy = shutil.copytree(tmp_path / "a", tmp_path / "b")
    gz = copy / "t10k-labels-idx1-ubyte.gz"
    (copy / "t10k-labels-idx1-ubyte").write_bytes(gzip.decompress(gz.read_bytes()))  # the loader reads either
    task = make_task("smnist", {"data": str(copy)})
    # Beside its .gz, the plain file is the one read: the message says so (the .gz is right there).
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte is read in place of the .gz beside it \(an "
                                        r"uncompressed file comes first\): remove it or give another folder"):
        task.check_data_is(recorded, "m.pt")
    gz.unlink()
    assert len(task.load().test.y) == 100
    with pytest.raises(DataError, match=r"trained on: the recorded content of t10k-labels-idx1-ubyte.gz is not among "
                                        r"the files read \(t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte, "
                                        r"train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz\) \(sha256 compared, "
                                        r"so a decompressed") as e:
        task.check_data_is(recorded, "m.pt")
    assert "in place of" not in str(e.value)
    make_task("smnist", {"data": str(tmp_path / "a")}).check_data_is(recorded, "m.pt")
    text = tmp_path / "gone.txt"
    text.write_text(TEXT)
    task = make_task("charlm", {"data": str(text)})
    recorded = task.data_hashes()
    text.unlink()  # a file that is gone is named so, not as another content "among the files read ()"
    with pytest.raises(DataError, match=f"^Text file {text} does not exist"):
        make_task("charlm", {"data": str(text)}).check_data_is(recorded, "m.pt")


def test_info_gives_the_vocabulary_only_from_the_text_the_model_was_trained_on(charlm: Path, tmp_path: Path) -> None:
    import json

    r = run(["export", str(charlm), "--format", "dense", "--out-dir", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 0, r.output
    vocab = "".join(sorted(set(TEXT)))
    d = json.loads(run(["info", str(charlm), "--json"]).stdout)
    assert d["interface"]["vocabulary"] == vocab
    other = tmp_path / "b.txt"
    other.write_text(TEXT + " ZZZ 0123")  # another vocabulary: every id would shift
    d = json.loads(run(["info", str(charlm), "--json", "--data", str(other)]).stdout)
    assert "vocabulary" not in d["interface"] and "is not the data the model was trained on" in \
        d["interface"]["unavailable"]
    r = run(["info", str(charlm), "--data", str(other)])
    assert r.exit_code == 0 and "interface: unavailable (The data at" in r.stdout
    # --data that is not there is a mistake, as export and bench say: not an unavailable interface
    assert_one_line_error(run(["info", str(charlm), "--data", str(tmp_path / "gone.txt")]),
                          match=f"Text file {tmp_path / 'gone.txt'} does not exist")
    # The ONNX file stores the vocabulary it was exported with: another text, or none, changes nothing.
    onnx_file = tmp_path / "o" / "m.onnx"
    for data in (["--data", str(other)], ["--data", str(tmp_path / "gone.txt")], []):
        d = json.loads(run(["info", str(onnx_file), "--json", *data]).stdout)
        assert d["interface"]["vocabulary"] == vocab and d["interface_source"] == "file"


def test_resume_refuses_data_that_changed_since_the_run_started(tmp_path: Path) -> None:
    from helpers import training_interrupted_at

    text = tmp_path / "a.txt"
    text.write_text(TEXT)
    out = tmp_path / "m.pt"
    with training_interrupted_at(2):
        r = run(["train", "--task", "charlm", "--data", str(text), "--seq-len", "16", "--hidden", "4",
                 "--epochs", "3", "--out", str(out), "-q"])
    assert r.exit_code == 130, r.output
    before = out.read_bytes()
    text.write_text(TEXT + " more text")
    assert_one_line_error(run(["train", "--resume", "--out", str(out), "-q"]),
                          match=f"The data at {text} is not the data {out} was trained on")
    assert out.read_bytes() == before
    # moved: the error says how to give the new place; another text there is refused as above
    moved = tmp_path / "moved" / "b.txt"
    moved.parent.mkdir()
    text.rename(moved)
    assert_one_line_error(run(["train", "--resume", "--out", str(out), "-q"]),
                          match="if the run's files moved, give their new place with --data")
    text.write_text(TEXT + " more text")
    assert_one_line_error(run(["train", "--resume", "--out", str(out), "--data", str(text), "-q"]),
                          match=f"The data at {text} is not the data {out} was trained on")
    assert out.read_bytes() == before
    moved.write_text(TEXT)  # the files it started with, in their new place: it resumes, and records the place
    assert run(["train", "--resume", "--out", str(out), "--data", str(moved), "-q"]).exit_code == 0
    from models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(out)
    assert ckpt.state == "complete" and ckpt.task["params"]["data"] == str(moved)


def test_a_teacher_trained_on_another_text_is_refused(charlm: Path, tmp_path: Path) -> None:
    """Another text is another vocabulary: a teacher's logits would name other characters.
    A teacher trained on a copy of the same text (another seq_len) is accepted."""
    swapped = TEXT.swapcase()  # as many characters, other ones
    for name, text, seq_len in (("other", swapped, "16"), ("same", TEXT, "12")):
        (tmp_path / f"{name}.txt").write_text(text)
        r = run(["train", "--task", "charlm", "--data", str(tmp_path / f"{name}.txt"), "--seq-len", seq_len,
                 "--hidden", "4", "--epochs", "1", "--out", str(tmp_path / f"{name}.pt"), "-q"])
        assert r.exit_code == 0, r.output
    args = ["prune", str(charlm), "--keep", "2", "--finetune-epochs", "1", "--distill", "0.5", "-q"]
    r = run([*args, "--teacher", str(tmp_path / "other.pt"), "--out", str(tmp_path / "p.pt")])
    assert_one_line_error(r, match=f"Teacher {tmp_path / 'other.pt'} was trained on other data: its vocabulary "
                                   "differs from the pruned checkpoint's")
    assert not (tmp_path / "p.pt").exists()
    r = run([*args, "--teacher", str(tmp_path / "same.pt"), "--out", str(tmp_path / "p.pt")])
    assert r.exit_code == 0, r.output


def test_no_output_replaces_the_data_it_reads_even_with_force(charlm: Path, tmp_path: Path) -> None:
    """prune --out and --plot, export's files and train --out inside an MNIST directory: the
    data is an input, never overwritten (prune --force replaced the text with a checkpoint)."""
    from helpers import make_mnist_dir

    text = tmp_path / "a.txt"
    text.write_text(TEXT)
    for args, option in ((["--out", str(text)], "--out"), (["--out", str(tmp_path / "p.pt"), "--plot", str(text)],
                                                           "--plot")):
        r = run(["prune", str(charlm), "--keep", "2", "--finetune-epochs", "0", "--data", str(text), "--force",
                 *args, "-q"])
        assert_one_line_error(r, match=f"{option} {text} is one of the inputs")
    png = tmp_path / "a.png"  # a text named like the plot it would be replaced by
    png.write_text(TEXT)
    r = run(["prune", str(charlm), "--keep", "2", "--finetune-epochs", "0", "--data", str(png), "--force",
             "--out", str(tmp_path / "p.pt"), "--plot", str(png), "-q"])
    assert_one_line_error(r, match=f"--plot {png} is one of the inputs")
    onnx_named = tmp_path / "m.onnx"
    onnx_named.write_text(TEXT)
    r = run(["export", str(charlm), "--format", "dense", "--data", str(onnx_named), "--out-dir", str(tmp_path),
             "--force", "-q"])
    assert_one_line_error(r, match=f"{onnx_named} is one of the inputs")
    assert text.read_text() == png.read_text() == onnx_named.read_text() == TEXT
    mnist = make_mnist_dir(tmp_path / "mnist", n_train=20, n_test=10)
    idx = next(mnist.glob("train-images*"))
    before = idx.read_bytes()
    r = run(["train", "--task", "smnist", "--data", str(mnist), "--hidden", "4", "--epochs", "1", "--force",
             "--out", str(idx), "-q"])
    assert_one_line_error(r, match=f"--out {idx} is one of the inputs")
    assert idx.read_bytes() == before
    # Nor any other name the loader looks the file up by: a plain idx file beside its .gz is
    # read in its place (the data set would be a checkpoint from then on).
    smnist = tmp_path / "sm.pt"
    assert run(["train", "--task", "smnist", "--data", str(mnist), "--hidden", "4", "--epochs", "1",
                "--out", str(smnist), "-q"]).exit_code == 0
    before = {f.name: f.read_bytes() for f in mnist.iterdir()}
    for name in ("train-labels-idx1-ubyte", "t10k-images.idx3-ubyte", "t10k-labels.idx1-ubyte.gz"):
        target = mnist / name
        for args in (["train", "--task", "smnist", "--data", str(mnist), "--hidden", "4", "--epochs", "1"],
                     ["prune", str(smnist), "--keep", "2", "--finetune-epochs", "0", "--data", str(mnist)]):
            assert_one_line_error(run([*args, "--out", str(target), "-q"]), match=f"--out {target} is one of the inputs")
    assert {f.name: f.read_bytes() for f in mnist.iterdir()} == before


def test_the_library_refuses_other_data_as_the_cli_does(charlm: Path, tmp_path: Path) -> None:
    """prune_checkpoint checks the recorded data itself (a library caller has no CLI doing it),
    and data loaded before its file changed is not the data of a task that reads it now."""
    from compressor import PruneConfig, prune_checkpoint
    from models import ConfigError, DataError, load_checkpoint
    from models.tasks import task_from_checkpoint

    ckpt = load_checkpoint(charlm)
    text = tmp_path / "a.txt"
    text.write_text(TEXT.upper())
    task = task_from_checkpoint(ckpt.task, text)
    with pytest.raises(DataError, match=f"The data at {text} is not the data checkpoint {charlm} was trained on"):
        prune_checkpoint(ckpt, PruneConfig(keep=2, finetune_epochs=0), task, task.load(), None)
    shutil.copy(charlm.parent / "a.txt", text)
    loaded = task_from_checkpoint(ckpt.task, text).load()
    prune_checkpoint(ckpt, PruneConfig(keep=2, finetune_epochs=0), task_from_checkpoint(ckpt.task, text), loaded, None)
    text.write_text(TEXT.upper())  # the data in hand is the old text's; a task reading the file now differs
    with pytest.raises(ConfigError, match=r"data: loaded by another task than the one given \(files of other content"):
        prune_checkpoint(ckpt, PruneConfig(keep=2, finetune_epochs=0), task_from_checkpoint(ckpt.task, text), loaded, None)
