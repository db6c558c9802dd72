"""The embedded default pipeline: ``rnncompress run --out DIR`` with no file.

A synthetic task (no download, no data to fetch): path integration in a box, an Elman RNN
with the torus moduli regularizer at 90% recurrent sparsity, lattice-pruned to a quarter of
its neurons, exported, benchmarked and checked against a latency-ratio and a metric-drop budget. Sized to
finish in a few minutes on 2 CPU cores.
"""

DEFAULT_PIPELINE = """\
[pipeline]
name = "navigation-torus (embedded default)"

[task]
name = "navigation"
samples = 10000

[model]
cell = "rnn"
hidden = 256

[train]
epochs = 10
batch_size = 200
lr = 2e-3
space = "torus"
strength = 30.0
sparsity = 0.9
seed = 0

[prune]
method = "lattice"
keep = 0.25
finetune_epochs = 10
finetune_lr = 1e-3

[export]
formats = ["dense", "sparse", "step", "int8"]

[bench]
runs = 300
warmup = 30

[check]
max_latency_ratio = 0.5        # full sequence; add max_step_latency_ratio for streaming
max_metric_drop = 1.5          # cm of position error the pruned model may add to the trained one
"""
