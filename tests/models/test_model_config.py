"""ModelConfig: the parameter count it predicts (train's memory guard) is the built model's."""

from __future__ import annotations

import pytest

from models.errors import ConfigError
from models.sequence import MAX_LAYERS, ModelConfig, SequenceModel, count_parameters


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("extra", [{}, {"input_layer": "linear", "input_dim": 3}, {"input_layer": "embedding",
                                                                                    "input_dim": 4},
                                   {"bias": False, "init_size": 5, "head": "every"}])
def test_parameter_count_is_the_built_models(cell: str, extra: dict) -> None:
    config = ModelConfig(cell, input_size=6, hidden_sizes=(7, 3), output_size=2, **extra)
    assert config.parameter_count() == sum(p.numel() for p in SequenceModel(config).parameters())


@pytest.mark.parametrize("config", [
    dict(cell="lstm", hidden_sizes=(5, 3)),
    dict(cell="gru", hidden_sizes=(4,), input_layer="embedding", input_dim=3, input_size=7),
    dict(cell="rnn", hidden_sizes=(4, 4), input_layer="linear", input_dim=3, bias=False, init_size=5),
])
def test_parameter_count_matches_torch(config):
    """(bench reports this count for an ONNX file, whose model it does not build)"""
    cfg = ModelConfig(**{"input_size": 2, "output_size": 3, **config})
    assert cfg.parameter_count() == count_parameters(SequenceModel(cfg))


def test_layers_are_bounded() -> None:
    ModelConfig("gru", input_size=1, hidden_sizes=(1,) * MAX_LAYERS, output_size=1)
    with pytest.raises(ConfigError, match=f"'layers' parameter must be an int in \\[1, {MAX_LAYERS}\\]"):
        ModelConfig("gru", input_size=1, hidden_sizes=(1,) * (MAX_LAYERS + 1), output_size=1)


@pytest.mark.parametrize("kwargs, match", [
    ({"hidden_sizes": (2.5,)}, "'hidden_sizes' parameter must be a non-empty list of positive ints. Got (2.5,)"),
    ({"hidden_sizes": (True,)}, "'hidden_sizes' parameter"),
    ({"hidden_sizes": ("4",)}, "'hidden_sizes' parameter"),
    ({"hidden_sizes": "44"}, "'hidden_sizes' parameter"),
    ({"input_size": 2.5}, "'input_size' parameter must be an int. Got 2.5"),
])
def test_sizes_are_ints_as_given_not_coerced(kwargs: dict, match: str) -> None:
    """int() made 2.5 a 2 and True a 1: a hand-edited checkpoint's config read as another model."""
    import re

    with pytest.raises(ConfigError, match=re.escape(match)):
        ModelConfig(**{"cell": "lstm", "input_size": 2, "hidden_sizes": (4,), "output_size": 1, **kwargs})


def test_numpy_sizes_are_ints() -> None:
    import numpy as np

    assert ModelConfig("gru", 2, (np.int64(4), 3), 1).hidden_sizes == (4, 3)
