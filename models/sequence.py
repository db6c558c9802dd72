"""The recurrent sequence model every stage works on.

``SequenceModel``: optional input layer (Linear or Embedding) -> stacked single-layer
``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` modules -> Linear head on the last step or on every
step. Each layer is its own torch module so that layers can have different hidden sizes
after structural shrinking, while every module stays a standard torch module.

Pruning masks are non-persistent buffers beside the weights: the state dict stays the
plain torch one and the checkpoint stores the masks under their own key.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from models.errors import check_field_types, param_error

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
# An LSTM layer of 65 536 neurons already holds 2^34 recurrent weights (64 GiB in fp32): a
# larger hidden size is a typo, and torch fails on it with an opaque TypeError.
MAX_HIDDEN = 65536
# Stacked layers: far beyond any recurrent model trained in practice, and short of the
# minutes torch takes to build (and the hours to run) a hundred thousand of them.
MAX_LAYERS = 128
# Number of gate blocks stacked in weight_ih / weight_hh, in torch's order:
# LSTM (i, f, g, o), GRU (r, z, n), RNN a single block.
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
HEADS = ("last", "every")
INPUT_LAYERS = ("none", "linear", "embedding")
NONLINEARITIES = ("tanh", "relu")

State = Tensor | tuple[Tensor, Tensor]


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a ``SequenceModel``. Plain data: stored in checkpoints and reports."""

    cell: str
    input_size: int
    hidden_sizes: tuple[int, ...]
    output_size: int
    head: str = "last"
    input_layer: str = "none"
    input_dim: int = 0
    nonlinearity: str = "tanh"
    bias: bool = True
    init_size: int = 0

    def __post_init__(self) -> None:
        # Each size an int as given (numpy's too): int() made 2.5 a 2, True a 1 and '4' a 4.
        sizes = self.hidden_sizes
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Iterable) or not all(
                isinstance(h, numbers.Integral) and not isinstance(h, bool) for h in sizes):
            raise param_error("hidden_sizes", "a non-empty list of positive ints", sizes)
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in sizes))
        check_field_types(self)
        self.validate()

    def validate(self) -> None:
        if self.cell not in CELLS:
            raise param_error("cell", f"one of {sorted(CELLS)}", self.cell)
        if not self.hidden_sizes:
            raise param_error("hidden_sizes", "a non-empty list of positive ints", self.hidden_sizes)
        if len(self.hidden_sizes) > MAX_LAYERS:
            raise param_error("layers", f"an int in [1, {MAX_LAYERS}]", len(self.hidden_sizes))
        for h in self.hidden_sizes:
            if not 1 <= h <= MAX_HIDDEN:
                raise param_error("hidden", f"an int in [1, {MAX_HIDDEN}]", h)
        if self.input_size < 1:
            raise param_error("input_size", "a positive int", self.input_size)
        if self.output_size < 1:
            raise param_error("output_size", "a positive int", self.output_size)
        if self.head not in HEADS:
            raise param_error("head", f"one of {list(HEADS)}", self.head)
        if self.input_layer not in INPUT_LAYERS:
            raise param_error("input_layer", f"one of {list(INPUT_LAYERS)}", self.input_layer)
        if self.input_layer != "none" and self.input_dim < 1:
            raise param_error("input_dim", "a positive int when an input layer is used", self.input_dim)
        if self.nonlinearity not in NONLINEARITIES:
            raise param_error("nonlinearity", f"one of {list(NONLINEARITIES)}", self.nonlinearity)
        if self.init_size < 0:
            raise param_error("init_size", "an int >= 0", self.init_size)

    @property
    def num_layers(self) -> int:
        return len(self.hidden_sizes)

    @property
    def gates(self) -> int:
        return GATES[self.cell]

    @property
    def rnn_input_size(self) -> int:
        return self.input_dim if self.input_layer != "none" else self.input_size

    def parameter_count(self) -> int:
        """Parameters of the model this config builds, counted without building it."""
        g, bias = GATES[self.cell], 2 if self.bias else 0
        n = {"linear": (self.input_size + 1) * self.input_dim, "embedding": self.input_size * self.input_dim,
             "none": 0}[self.input_layer]
        in_size = self.rnn_input_size
        for h in self.hidden_sizes:
            n += g * h * (in_size + h + bias)
            in_size = h
        return n + (in_size + 1) * self.output_size + self.init_size * sum(self.hidden_sizes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise param_error("model config", f"keys among {sorted(names)}", sorted(unknown))
        return cls(**d)

    def with_hidden(self, hidden_sizes: tuple[int, ...]) -> "ModelConfig":
        d = self.to_dict()
        d["hidden_sizes"] = list(hidden_sizes)
        return ModelConfig.from_dict(d)


def _buffer_name(param_name: str) -> str:
    return "mask__" + param_name.replace(".", "__")


class SequenceModel(nn.Module):
    """Input layer -> stacked recurrent layers -> head.

    Args:
        config: the model's shape.

    Example:
        >>> cfg = ModelConfig("lstm", input_size=28, hidden_sizes=(64,), output_size=10)
        >>> SequenceModel(cfg)(torch.zeros(2, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        if c.input_layer == "linear":
            self.input = nn.Linear(c.input_size, c.input_dim)
        elif c.input_layer == "embedding":
            self.input = nn.Embedding(c.input_size, c.input_dim)
        else:
            self.input = None
        layers = []
        in_size = c.rnn_input_size
        for h in c.hidden_sizes:
            kwargs: dict[str, Any] = {"batch_first": True, "bias": c.bias}
            if c.cell == "rnn":
                kwargs["nonlinearity"] = c.nonlinearity
            layers.append(CELLS[c.cell](in_size, h, **kwargs))
            in_size = h
        self.rnn = nn.ModuleList(layers)
        self.head = nn.Linear(in_size, c.output_size)
        # Initial hidden state from task features (navigation: place code of the start).
        self.init = nn.Linear(c.init_size, sum(c.hidden_sizes), bias=False) if c.init_size else None
        self._masked: dict[str, str] = {}

    # ----------------------------------------------------------------- forward
    def initial_states(self, init: Tensor | None, batch: int) -> list[State | None]:
        """Per-layer initial state: zeros, or the init layer's projection of ``init``."""
        if self.init is None or init is None:
            return [None] * self.config.num_layers
        h_all = self.init(init)
        states: list[State | None] = []
        for h in torch.split(h_all, list(self.config.hidden_sizes), dim=-1):
            h0 = h.unsqueeze(0).contiguous()
            states.append((h0, torch.zeros_like(h0)) if self.config.cell == "lstm" else h0)
        return states

    def forward(self, x: Tensor, init: Tensor | None = None) -> Tensor:
        h = self.input(x) if self.input is not None else x
        for layer, state in zip(self.rnn, self.initial_states(init, x.shape[0])):
            h, _ = layer(h, state)
        if self.config.head == "last":
            h = h[:, -1]
        return self.head(h)

    def step(self, x_t: Tensor, states: list[State | None]) -> tuple[Tensor, list[State]]:
        """One time step for streaming: ``x_t`` is [B, F] (or [B] tokens)."""
        h = self.input(x_t) if self.input is not None else x_t
        h = h.unsqueeze(1)
        new_states: list[State] = []
        for layer, state in zip(self.rnn, states):
            h, s = layer(h, state)
            new_states.append(s)
        return self.head(h[:, 0]), new_states

    # ------------------------------------------------------------------- masks
    def set_mask(self, name: str, mask: Tensor) -> None:
        param = self.get_parameter(name)
        if mask.shape != param.shape:
            raise ValueError(f"mask for {name} has shape {tuple(mask.shape)}, expected {tuple(param.shape)}")
        buf = _buffer_name(name)
        self.register_buffer(buf, mask.to(dtype=torch.bool, device=param.device).clone(), persistent=False)
        self._masked[name] = buf

    def masks(self) -> dict[str, Tensor]:
        return {name: getattr(self, buf) for name, buf in self._masked.items()}

    def clear_masks(self) -> None:
        for buf in self._masked.values():
            delattr(self, buf)
        self._masked = {}

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero every masked weight (called after each optimizer step)."""
        for name, mask in self.masks().items():
            self.get_parameter(name).mul_(mask)

    @torch.no_grad()
    def mask_grads(self) -> None:
        """Zero the gradients of masked weights so optimizer state never grows there."""
        for name, mask in self.masks().items():
            p = self.get_parameter(name)
            if p.grad is not None:
                p.grad.mul_(mask)

    # ---------------------------------------------------------------- weights
    def recurrent_weights(self) -> Iterator[tuple[int, str, nn.Parameter]]:
        """(layer, parameter name, weight_hh) for every recurrent layer."""
        for l, layer in enumerate(self.rnn):
            yield l, f"rnn.{l}.weight_hh_l0", layer.weight_hh_l0

    def prunable_weights(self, scope: str = "recurrent") -> dict[str, nn.Parameter]:
        """Weights magnitude pruning may touch: recurrent matrices, or every matrix."""
        if scope == "recurrent":
            return {name: p for _, name, p in self.recurrent_weights()}
        if scope == "all":
            return {n: p for n, p in self.named_parameters() if p.dim() == 2 and not n.startswith("init.")}
        raise param_error("prune_scope", "'recurrent' or 'all'", scope)


def gate_blocks(weight: Tensor, gates: int) -> Tensor:
    """View a stacked gate matrix [G*H, in] as [G, H, in]."""
    return weight.view(gates, weight.shape[0] // gates, weight.shape[1])


def sparsity_report(model: SequenceModel) -> dict[str, Any]:
    """Exact-zero counts per 2-D weight, and recurrent / overall totals."""
    per: dict[str, dict[str, float]] = {}
    rec_zero = rec_total = all_zero = all_total = 0
    recurrent = {name for _, name, _ in model.recurrent_weights()}
    for name, p in model.named_parameters():
        if p.dim() != 2:
            continue
        zeros = int((p.detach() == 0).sum())
        n = p.numel()
        per[name] = {"zeros": zeros, "numel": n, "sparsity": zeros / n}
        all_zero += zeros
        all_total += n
        if name in recurrent:
            rec_zero += zeros
            rec_total += n
    return {
        "per_matrix": per,
        "recurrent": rec_zero / rec_total if rec_total else 0.0,
        "overall": all_zero / all_total if all_total else 0.0,
    }


def count_parameters(model: nn.Module, nonzero: bool = False) -> int:
    if nonzero:
        return int(sum((p.detach() != 0).sum() for p in model.parameters()))
    return int(sum(p.numel() for p in model.parameters()))
