"""What a real run would refuse after minutes of work is refused by the parser (or, for the
data, by the checks before any work), also by --dry-run: one line naming the TOML file, line
and key, exit 2, --out untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compressor.training import model_config_for
from helpers import assert_one_line_error, make_mnist_dir, run
from models.errors import ConfigError
from models.tasks import make_task
from runtime.pipeline_config import Pipeline, load_pipeline, parse_pipeline, resolved_toml

BASE = """\
[task]
name = "adding"
seq_len = 6
samples = 64
val_samples = 16
test_samples = 16

[model]
cell = "rnn"
hidden = 8

[train]
epochs = 1
batch_size = 32

[prune]
keep = 0.5
finetune_epochs = 0

[bench]
runs = 3
warmup = 1

[check]
max_size_kb = 1000
"""


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the (first) line of ``text`` that starts with ``needle``."""
    return next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith(needle))


def edit(table: str, lines: str, text: str = BASE) -> str:
    """``text`` with ``lines`` added at the top of ``[table]``."""
    assert f"[{table}]\n" in text
    return text.replace(f"[{table}]\n", f"[{table}]\n{lines}\n", 1)


def assert_refused_at(text: str, table: str, key: str, match: str, base_dir: Path | None = None) -> None:
    with pytest.raises(ConfigError) as e:
        parse_pipeline(text, "p.toml", base_dir)
    where = f"p.toml:{line_of(text, key + ' =')}: [{table}] {key}: "
    assert str(e.value).startswith(where) and match in str(e.value), str(e.value)


# ---------------------------------------------------------------- [task] data


def _make_data(tmp: Path) -> None:
    """A file, an empty directory, an MNIST directory without one of its files, a directory
    named like an npz file."""
    (tmp / "a_file").write_text("x")
    (tmp / "empty").mkdir()
    partial = make_mnist_dir(tmp / "partial", n_train=12, n_test=12)
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp / "dir.npz").mkdir()


def _with_task(name: str, data: str) -> str:
    return f'[task]\nname = "{name}"\ndata = "{data}"\n' + BASE[BASE.index("\n[model]"):]


@pytest.mark.parametrize("name, data, match", [
    ("smnist", "a_file", "is a file; --data must be the directory holding the four idx files"),
    ("smnist", "empty", "is incomplete: missing train-images-idx3-ubyte"),
    ("smnist", "partial", "is incomplete: missing t10k-labels-idx1-ubyte (.gz or not)"),
    ("smnist", "nowhere", "does not exist"),
    ("charlm", "empty", "is a directory; give the file itself."),
    ("charlm", "{tmp}", "is a directory; give the file itself."),  # absolute, as /tmp
    ("charlm", "none.txt", "none.txt does not exist"),
    ("npz", "dir.npz", "is a directory; give the file itself."),
])
def test_data_the_loader_refuses_is_refused_before_any_work(name: str, data: str, match: str,
                                                            tmp_path: Path) -> None:
    _make_data(tmp_path)
    cfg = tmp_path / "p.toml"
    cfg.write_text(_with_task(name, data.format(tmp=tmp_path)))
    before = sorted(tmp_path.rglob("*"))
    for dry in (["--dry-run"], []):
        r = run(["run", str(cfg), "--out", str(tmp_path / "out"), "-q", *dry])
        assert_one_line_error(r, match=f"{cfg}:3: [task] data: ")
        assert match in r.stderr, r.stderr
        assert sorted(tmp_path.rglob("*")) == before  # nothing created, --out included


@pytest.mark.parametrize("name", ["smnist", "charlm"])
def test_data_the_loader_reads_passes_the_dry_run(name: str, tmp_path: Path) -> None:
    if name == "smnist":
        make_mnist_dir(tmp_path / "mnist", n_train=24, n_test=12)
        data = "mnist"
    else:
        (tmp_path / "text.txt").write_text("hello world, " * 200)
        data = "text.txt"
    cfg = tmp_path / "p.toml"
    cfg.write_text(_with_task(name, data))
    r = run(["run", str(cfg), "--out", str(tmp_path / "out"), "--dry-run", "-q"])
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- [model]


@pytest.mark.parametrize("lines, key, match", [
    ('nonlinearity = "sigmoid"', "nonlinearity", "The 'nonlinearity' parameter must be one of ['tanh', 'relu']"),
    ('nonlinearity = "Tanh"', "nonlinearity", "Got 'Tanh' instead"),
    ('layers = 0', "layers", "The 'layers' parameter must be a positive int. Got 0 instead."),
    ('cell = "lstm"\nnonlinearity = "relu"', "nonlinearity", 'applies to cell = "rnn" only (an LSTM has fixed gate'),
    ('cell = "gru"\nnonlinearity = "tanh"', "nonlinearity", 'applies to cell = "rnn" only (a GRU has'),
])
def test_bad_model_is_refused_at_parse(lines: str, key: str, match: str) -> None:
    text = edit("model", lines).replace('cell = "rnn"\n', "" if "cell" in lines else 'cell = "rnn"\n')
    assert_refused_at(text, "model", key, match)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("nonlinearity", [None, "tanh", "relu", "sigmoid"])
def test_a_model_the_parser_accepts_is_one_training_builds(cell: str, layers: int, nonlinearity: str | None) -> None:
    """The invariant: parse accepts [model] exactly when the model can be built for the task's
    data (and the CLI's rule holds: a nonlinearity is for the Elman RNN alone)."""
    lines = f'cell = "{cell}"\nlayers = {layers}' + (f'\nnonlinearity = "{nonlinearity}"' if nonlinearity else "")
    text = edit("model", lines).replace('cell = "rnn"\nhidden', "hidden")
    valid = nonlinearity in (None, "tanh", "relu") and (nonlinearity is None or cell == "rnn")
    if not valid:
        with pytest.raises(ConfigError, match=r"^p\.toml:\d+: \[model\] nonlinearity: "):
            parse_pipeline(text, "p.toml")
        return
    p = parse_pipeline(text, "p.toml")
    data = make_task(p.task["name"], p.task["params"]).load()
    c = model_config_for(data, p.model["cell"], p.model["hidden"], p.model["layers"], p.model["nonlinearity"])
    assert (c.cell, c.hidden_sizes) == (cell, (8,) * layers)


@pytest.mark.parametrize("lines, key, match", [
    ("strength = 3.0", "strength", "applies to a regularizer (space; the default none trains without one) only"),
    ('space = "l1"\ninhibitor = "gauss"', "inhibitor", "applies to a space with geometry"),
    ('schedule = "linear"', "schedule", "applies to magnitude pruning (sparsity > 0) only; drop it."),
    ("sparsity = 0.0\nprune_end = 0.5", "prune_end", "applies to magnitude pruning (sparsity > 0) only"),
])
def test_train_keys_the_space_or_sparsity_ignore_are_refused(lines: str, key: str, match: str) -> None:
    assert_refused_at(edit("train", lines), "train", key, match)


@pytest.mark.parametrize("lines", ["", 'space = "l1"\nstrength = 2.0', 'space = "torus"\nsparsity = 0.5'])
def test_the_resolved_train_settings_parse_again(lines: str) -> None:
    p = _assert_resolved_parses_again(edit("train", lines))
    assert p.train == parse_pipeline(resolved_toml(p), "resolved.toml").train


# ---------------------------------------------------------------- [prune]


@pytest.mark.parametrize("lines, key, match", [
    ("thresholds = 8", "thresholds", 'applies to variant = "continuous" only; drop it.'),
    ('variant = "binary"\nthresholds = 8', "thresholds", 'applies to variant = "continuous" only'),
    *((f'method = "{m}"\n{k} = {v}', k, 'applies to method = "lattice" only; drop it.')
      for m in ("norm", "random")
      for k, v in (("variant", '"binary"'), ("quantile", "0.5"), ("threshold", "0.1"), ("thresholds", "8"),
                   ("centrality", '"degree"'), ("feed_forward", "true"), ("edge_prune", "false"))),
    ("quantile = 0.5\nthreshold = 0.1", "threshold", "an absolute threshold replaces quantile; give one of them."),
    ('variant = "continuous"\nthreshold = 0.1', "threshold", "must be unset for the continuous variant"),
    *((f'method = "{m}"\nseed = 3', "seed", 'applies to method = "random" only; drop it.') for m in ("lattice", "norm")),
    # the continuous filtration has its own levels: quantile sets only edge pruning's relation
    ('variant = "continuous"\nquantile = 0.5', "quantile", 'applies to variant = "binary" only; drop it.'),
    *((f"{k} = {v}", k, "applies to fine-tuning (finetune_epochs > 0) only; drop it.")  # (BASE: finetune_epochs = 0)
      for k, v in (("finetune_lr", "1e-3"), ("distill", "0.5"), ("distill_temperature", "4.0"),
                   ("release_masks", "true"), ("finetune_strength", "0.0"))),
])
def test_prune_keys_the_method_ignores_are_refused(lines: str, key: str, match: str) -> None:
    assert_refused_at(edit("prune", lines), "prune", key, match)


@pytest.mark.parametrize("lines", [
    'method = "norm"', 'method = "random"\nseed = 3', "threshold = 0.1", "quantile = 0.8",
    'variant = "continuous"\nthresholds = 8', 'variant = "continuous"\nedge_prune = true\nquantile = 0.8\nthresholds = 4',
    'centrality = "flow"\nedge_prune = true\nfeed_forward = false',
])
def test_the_resolved_settings_of_any_prune_method_parse_again(lines: str) -> None:
    """resolved_toml leaves out what the method ignores, so its TOML is the same pipeline."""
    _assert_resolved_parses_again(edit("prune", lines))


def _assert_resolved_parses_again(text: str) -> Pipeline:
    p = parse_pipeline(text, "p.toml")
    again = parse_pipeline(resolved_toml(p), "resolved.toml")
    assert again.prune == p.prune and resolved_toml(again) == resolved_toml(p)
    return p


FINE_TUNED = BASE.replace("finetune_epochs = 0", "finetune_epochs = 2")


def test_a_fine_tuning_strength_without_a_regularizer_is_refused() -> None:
    assert_refused_at(edit("prune", "finetune_strength = 0.0", FINE_TUNED), "prune", "finetune_strength",
                      'applies to a model trained with a regularizer ([train] space; "none" trains without one)')
    edit_space = edit("train", 'space = "torus"', FINE_TUNED)
    assert parse_pipeline(edit("prune", "finetune_strength = 0.0", edit_space), "p.toml").prune.finetune_strength == 0


def test_a_distillation_temperature_without_distillation_is_refused() -> None:
    assert_refused_at(edit("prune", "distill_temperature = 4.0", FINE_TUNED), "prune", "distill_temperature",
                      "applies to distillation (distill > 0) only; drop it.")


@pytest.mark.parametrize("lines", ["", "distill = 0.5\ndistill_temperature = 3.0"])
def test_the_resolved_settings_of_a_fine_tune_parse_again(lines: str) -> None:
    p = _assert_resolved_parses_again(edit("prune", lines, FINE_TUNED))
    assert ("distill_temperature =" in resolved_toml(p)) == (p.prune.distill > 0)


# ---------------------------------------------------------------- [check]


@pytest.mark.parametrize("bench, check, key, match", [
    ("accuracy = false", "min_metric = 0.1", "min_metric", "[bench] accuracy = false does not measure"),
    ("accuracy = false", "max_metric_drop = 0.1", "max_metric_drop", "[bench] accuracy = false"),
    ("step = false", "max_step_latency_ratio = 0.5", "max_step_latency_ratio", "[bench] step = false does not"),
    ("", "min_metric = -1", "min_metric", "Budget min_metric = -1 cannot hold: mse is never negative."),
    ("", "min_metric = -0.5", "min_metric", "cannot hold"),
])
def test_budgets_the_bench_cannot_answer_are_refused(bench: str, check: str, key: str, match: str) -> None:
    text = edit("check", check, edit("bench", bench) if bench else BASE)
    assert_refused_at(text, "check", key, match)


@pytest.mark.parametrize("task, check, match", [
    ('name = "smnist"\ndata = "x"', "min_metric = 98", "accuracy is a fraction in [0, 1] (did you mean 0.98?)"),
    ('name = "smnist"\ndata = "x"', "min_metric = -0.1", "accuracy is a fraction in [0, 1]"),
    ('name = "smnist"\ndata = "x"', "max_metric_drop = 2", "allows any accuracy"),
    ('name = "charlm"\ndata = "x"', "min_metric = -1", "bpc is never negative"),
    ('name = "navigation"', "min_metric = -1", "position_error_cm is never negative"),
    ('name = "npz"\ndata = "x"', "min_metric = -1", "the metric of task 'npz' is accuracy or mse, by its data"),
])
def test_a_min_metric_no_model_can_meet_is_refused(task: str, check: str, match: str) -> None:
    text = "[task]\n" + task + "\n" + edit("check", check)[BASE.index("\n[model]"):]
    assert_refused_at(text, "check", check.split(" ")[0], match)


def test_an_npz_budget_follows_the_file_when_it_exists(tmp_path: Path) -> None:
    """Class labels make the metric accuracy: min_metric = 2 is refused before any training
    (with a missing file either metric is possible, and the missing file is refused later)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 4, 2)).astype(np.float32)
    np.savez(tmp_path / "cls.npz", X=X, y=rng.integers(0, 3, size=10))
    np.savez(tmp_path / "reg.npz", X=X, y=rng.normal(size=10))
    text = lambda f: "[task]\n" + f'name = "npz"\ndata = "{f}"\n' + edit("check", "min_metric = 2")[BASE.index("\n[model]"):]
    assert_refused_at(text("cls.npz"), "check", "min_metric", "accuracy is a fraction in [0, 1]", base_dir=tmp_path)
    assert parse_pipeline(text("reg.npz"), "p.toml", base_dir=tmp_path).check["min_metric"] == 2.0


@pytest.mark.parametrize("task, check", [
    ('name = "smnist"\ndata = "x"', "min_metric = 0.98"),
    ('name = "smnist"\ndata = "x"', "max_metric_drop = 0.01"),
    ('name = "adding"', "min_metric = 0.05"),  # mse <= 0.05
    ('name = "charlm"\ndata = "x"', "min_metric = 2.5"),  # bpc <= 2.5
    ('name = "npz"\ndata = "x"', "min_metric = 5"),  # an mse, when the targets are floats
    ('name = "npz"\ndata = "x"', "max_metric_drop = 3"),
])
def test_a_budget_some_model_can_meet_is_accepted(task: str, check: str) -> None:
    text = "[task]\n" + task + "\n" + edit("check", check)[BASE.index("\n[model]"):]
    assert parse_pipeline(text, "p.toml").check[check.split(" ")[0]] == float(check.split(" = ")[1])


# ---------------------------------------------------------------- encoding


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text(BASE, encoding="utf-8-sig")
    assert cfg.read_bytes().startswith(b"\xef\xbb\xbf")
    assert resolved_toml(load_pipeline(cfg)) == resolved_toml(parse_pipeline(BASE, str(cfg)))
    assert run(["run", str(cfg), "--out", str(tmp_path / "out"), "--dry-run", "-q"]).exit_code == 0
    # Line numbers are the editor's: the mark is no line of its own.
    bad = BASE.replace("epochs = 1", "epoch = 1")
    cfg.write_text(bad, encoding="utf-8-sig")
    assert_one_line_error(run(["run", str(cfg), "--out", str(tmp_path / "out"), "-q"]),
                          match=f"p.toml:{line_of(bad, 'epoch =')}: [train] epoch: unknown key")


@pytest.mark.parametrize("task, key, match", [
    ('name = "navigation"\nsurround = 3.0', "surround", "applies to tuning = 'dog' only; drop it."),
    ('name = "smnist"\ndata = "x"\npermute_seed = 4', "permute_seed", "applies to permute = true only; drop it."),
])
def test_task_keys_the_task_ignores_are_refused(task: str, key: str, match: str) -> None:
    text = "[task]\n" + task + "\n" + BASE[BASE.index("\n[model]"):]
    assert_refused_at(text, "task", key, match)
    used = text.replace("surround = 3.0", 'surround = 3.0\ntuning = "dog"').replace(
        "permute_seed = 4", "permute_seed = 4\npermute = true")
    p = parse_pipeline(used, "p.toml")
    assert p.task["params"][key] in (3.0, 4)
    # The resolved settings print a task key only where it applies, and parse back the same.
    for settings in (used, "[task]\n" + task.split("\n" + key)[0] + "\n" + BASE[BASE.index("\n[model]"):]):
        p = parse_pipeline(settings, "p.toml")
        resolved = resolved_toml(p)
        assert parse_pipeline(resolved, "p.toml") == p
        assert (f"\n{key} = " in resolved) == (settings is used)
