"""Structural shrinking: remove hidden neurons from recurrent layers (the surgery).

Mask first, then resize. ``mask_neurons`` zeroes every weight through which a removed
neuron reaches anything else (its column of weight_hh and of the consumer — the next
layer's weight_ih or the head), so the kept neurons can no longer see it; ``shrink_model``
then deletes it for real: the rows of every gate block of weight_ih, weight_hh and both
biases, the column of weight_hh and of the consumer, and its slice of the init layer.
The masked and the shrunk model compute the same outputs — the invariant the tests check.
The shrunk model is a plain, smaller ``SequenceModel``: that is where latency comes from,
because onnxruntime runs dense kernels.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from models.errors import param_error
from models.sequence import SequenceModel


def _gate_rows(keep: Tensor, hidden: int, gates: int) -> Tensor:
    """Row indices of ``keep`` inside every gate block of a stacked [G*H, ...] matrix."""
    return torch.cat([g * hidden + keep for g in range(gates)])


def _check_keep(model: SequenceModel, layer: int, keep: Tensor) -> Tensor:
    """``keep`` for ``layer`` as sorted neuron indices: given as indices, or as a bool mask
    over the layer's neurons. Fractional indices, repeats and out-of-range ones are refused
    (each means the caller computed something else than it meant)."""
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < model.config.num_layers:
        raise param_error("layer", f"a layer index in [0, {model.config.num_layers})", layer)
    n = model.config.hidden_sizes[layer]
    try:
        given = torch.as_tensor(keep).flatten()
    except (TypeError, ValueError, RuntimeError):
        raise param_error("keep", "neuron indices or a bool mask", keep) from None
    if given.dtype == torch.bool:
        if given.numel() != n:
            raise param_error("keep", f"a bool mask over the layer's {n} neurons", f"{given.numel()} values")
        given = given.nonzero().flatten()
    elif given.is_floating_point() or given.is_complex():
        raise param_error("keep", "integer neuron indices (or a bool mask)", given.tolist())
    keep = given.to(torch.long)
    if keep.numel() < 1:
        raise param_error("keep", "at least 1 neuron per layer", int(keep.numel()))
    if keep.min() < 0 or keep.max() >= n:
        raise param_error("keep", f"neuron indices in [0, {n})", keep.tolist())
    unique = torch.unique(keep)  # sorted: neuron order is preserved
    if unique.numel() != keep.numel():
        raise param_error("keep", "distinct neuron indices", keep.tolist())
    return unique


def _consumer(model: SequenceModel, layer: int) -> str:
    return f"rnn.{layer + 1}.weight_ih_l0" if layer + 1 < model.config.num_layers else "head.weight"


@torch.no_grad()
def mask_neurons(model: SequenceModel, layer: int, keep: Tensor) -> None:
    """Zero the outgoing weights of every neuron of ``layer`` not in ``keep`` (in place)."""
    keep = _check_keep(model, layer, keep)
    n = model.config.hidden_sizes[layer]
    drop = torch.ones(n, dtype=torch.bool)
    drop[keep] = False
    model.rnn[layer].weight_hh_l0[:, drop] = 0.0
    model.get_parameter(_consumer(model, layer))[:, drop] = 0.0


def _slice_param(t: Tensor, rows: Tensor | None, cols: Tensor | None) -> Tensor:
    if rows is not None:
        t = t.index_select(0, rows)
    if cols is not None:
        t = t.index_select(1, cols)
    return t.clone()


@torch.no_grad()
def shrink_model(model: SequenceModel, keep: Sequence[Tensor | None]) -> SequenceModel:
    """A new, smaller model keeping ``keep[l]`` neurons of layer l (None: keep all).

    Weights, biases and masks are sliced; outputs equal those of ``model`` after
    ``mask_neurons`` with the same ``keep``.
    """
    cfg = model.config
    if len(keep) != cfg.num_layers:
        raise param_error("keep", f"one entry per layer ({cfg.num_layers})", len(keep))
    idx = [torch.arange(h) if k is None else _check_keep(model, l, k) for l, (h, k) in enumerate(zip(cfg.hidden_sizes, keep))]
    new_cfg = cfg.with_hidden(tuple(int(i.numel()) for i in idx))
    G = cfg.gates
    # For every parameter: which rows / columns survive (None = all).
    plan: dict[str, tuple[Tensor | None, Tensor | None]] = {}
    for l, (h, k) in enumerate(zip(cfg.hidden_sizes, idx)):
        rows = _gate_rows(k, h, G)
        in_cols = idx[l - 1] if l > 0 else None
        plan[f"rnn.{l}.weight_ih_l0"] = (rows, in_cols)
        plan[f"rnn.{l}.weight_hh_l0"] = (rows, k)
        plan[f"rnn.{l}.bias_ih_l0"] = (rows, None)
        plan[f"rnn.{l}.bias_hh_l0"] = (rows, None)
    plan["head.weight"] = (None, idx[-1])
    if model.init is not None:
        offsets = torch.cumsum(torch.tensor((0,) + cfg.hidden_sizes[:-1]), 0)
        plan["init.weight"] = (torch.cat([o + k for o, k in zip(offsets, idx)]), None)
    state = {}
    for name, t in model.state_dict().items():
        rows, cols = plan.get(name, (None, None))
        state[name] = _slice_param(t, rows, cols)
    small = SequenceModel(new_cfg)
    small.load_state_dict(state)
    for name, mask in model.masks().items():
        rows, cols = plan.get(name, (None, None))
        small.set_mask(name, _slice_param(mask, rows, cols))
    small.train(model.training)
    return small


def dead_neurons(model: SequenceModel, layer: int) -> Tensor:
    """Neurons of ``layer`` whose outgoing weights are all zero (removable for free)."""
    out_rec = model.rnn[layer].weight_hh_l0.detach().abs().sum(0)
    out_ff = model.get_parameter(_consumer(model, layer)).detach().abs().sum(0)
    return torch.nonzero((out_rec + out_ff) == 0).flatten()
