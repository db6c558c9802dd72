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
