"""What makes a model small: moduli regularizer, magnitude pruning, training, the dependency
lattice (criterion), neuron selection (strategy) and structural shrinking (surgery).

Public API:
    train_new(task, data, model_config_for(data, cell, hidden, layers), TrainConfig(...), out) -> Checkpoint
    resume_training(ckpt, task, data, out) -> Checkpoint
    prune_checkpoint(ckpt, PruneConfig(...), task, data, out) -> PruneResult
    meet_irreducible(relation) -> bool vector over senders (compressor.lattice)
    select_neurons(model, SelectionConfig(...)), shrink_model(model, keep), mask_neurons(...)
"""

from compressor.lattice import LatticeCriterion, binary_relation, meet_irreducible
from compressor.magnitude import PruneSchedule
from compressor.moduli import ModuliConfig, ModuliRegularizer
from compressor.prune import PruneConfig, PruneResult, prune_checkpoint
from compressor.selection import SelectionConfig, parse_keep, select_neurons
from compressor.shrink import mask_neurons, shrink_model
from compressor.training import TrainConfig, model_config_for, resume_training, train_new

__all__ = [
    "LatticeCriterion", "binary_relation", "meet_irreducible", "PruneSchedule", "ModuliConfig", "ModuliRegularizer",
    "PruneConfig", "PruneResult", "prune_checkpoint", "SelectionConfig", "parse_keep", "select_neurons",
    "mask_neurons", "shrink_model", "TrainConfig", "model_config_for", "resume_training", "train_new",
]
