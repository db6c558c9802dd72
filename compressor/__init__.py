"""What makes a model small: moduli regularizer, magnitude pruning, training, the dependency
lattice (criterion), neuron selection (strategy) and structural shrinking (surgery)."""
