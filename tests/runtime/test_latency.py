"""Interleaved measurement and the runners: call order, state handling, summaries.
No assertion depends on how long anything takes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exporters.verify import make_session, run_full, run_steps
from models.checkpoint import load_checkpoint
from models.errors import ConfigError
from models.tasks import task_from_checkpoint
from runtime.latency import (
    call_floor_model,
    measure_interleaved,
    ort_full_runner,
    ort_step_runner,
    summarize,
    torch_full_runner,
    torch_step_runner,
    torch_threads,
)


def logging_runners(names, log):
    return {n: (lambda n=n: log.append(n)) for n in names}


def test_every_round_calls_every_runner_once_in_a_shuffled_order():
    log: list[str] = []
    names = ["a", "b", "c", "d"]
    out = measure_interleaved(logging_runners(names, log), warmup=3, runs=40, seed=7)
    assert len(log) == (3 + 40) * 4
    rounds = [tuple(log[i:i + 4]) for i in range(0, len(log), 4)]
    assert all(sorted(r) == names for r in rounds)  # each runner once per round
    assert len(set(rounds)) > 5  # the order changes from round to round
    firsts = {r[0] for r in rounds}
    assert firsts == set(names)  # no runner is always first
    assert set(out) == set(names)
    for v in out.values():
        assert v.shape == (40,) and v.dtype == np.float64 and (v >= 0).all()


def test_the_order_is_seeded():
    logs = []
    for seed in (0, 0, 1):
        log: list[str] = []
        measure_interleaved(logging_runners("xyz", log), warmup=0, runs=20, seed=seed)
        logs.append(log)
    assert logs[0] == logs[1] != logs[2]


@pytest.mark.parametrize("kwargs, match", [
    ({"runners": {}}, "'runners' parameter must be a non-empty mapping"),
    ({"runs": 0}, "'runs' parameter must be an int >= 1"),
    ({"runs": 2.5}, "'runs' parameter must be an int >= 1"),
    ({"runs": True}, "'runs' parameter must be an int >= 1"),
    ({"warmup": -1}, "'warmup' parameter must be an int >= 0"),
])
def test_bad_measurement_arguments(kwargs, match):
    args = {"runners": {"a": lambda: None}, "warmup": 0, "runs": 3, **kwargs}
    with pytest.raises(ConfigError, match=match):
        measure_interleaved(**args)


def test_summarize():
    s = summarize(np.arange(1, 101, dtype=float))  # 1..100 ms
    assert s == {"p50": 50.5, "p90": 90.1, "p99": 99.01, "mean": 50.5, "min": 1.0, "max": 100.0, "runs": 100}
    for bad in ([], None, "abc", [1.0, float("nan")], [-1.0]):
        with pytest.raises(ConfigError, match="'samples_ms' parameter"):
            summarize(bad)


def _model_and_sequence(tiny):
    ckpt = load_checkpoint(tiny["ckpt"])
    test = task_from_checkpoint(ckpt.task).load().test
    return ckpt.build_model(), test.take(slice(0, 1))


def test_step_runner_carries_the_state_and_resets_after_the_sequence(tiny):
    model, seq = _model_and_sequence(tiny)
    session = make_session(tiny["step"])
    expected, _ = run_steps(session, seq.x)  # [1, T, out]
    steps = seq.x.shape[1]
    run, run_torch = ort_step_runner(session, seq.x), torch_step_runner(model, seq.x)
    got = [run() for _ in range(2 * steps)]
    got_torch = [run_torch().numpy() for _ in range(2 * steps)]
    for t in range(2 * steps):  # the second pass starts again from the initial state
        np.testing.assert_allclose(got[t], expected[:, t % steps], atol=1e-6)
        np.testing.assert_allclose(got_torch[t], expected[:, t % steps], atol=1e-5)


def test_chunk_runner_feeds_whole_chunks_and_carries_the_state(tiny):
    _, seq = _model_and_sequence(tiny)  # 6 steps
    expected, _ = run_steps(make_session(tiny["step"]), seq.x)
    chunk = make_session(tiny["chunk"])
    run = ort_step_runner(chunk, seq.x, steps_per_call=4)  # one whole chunk (steps 0-3), then the reset
    for _ in range(2):
        np.testing.assert_allclose(run(), expected[:, :4], atol=1e-6)
    run = ort_step_runner(chunk, seq.x, steps_per_call=3)
    for t in range(4):
        np.testing.assert_allclose(run(), expected[:, 3 * (t % 2): 3 * (t % 2) + 3], atol=1e-6)
    with pytest.raises(ConfigError, match="'steps_per_call' parameter must be at most the sequence length 6"):
        ort_step_runner(chunk, seq.x, steps_per_call=7)
    with pytest.raises(ConfigError, match="'steps_per_call' parameter must be 1 for a step model"):
        ort_step_runner(make_session(tiny["step"]), seq.x, steps_per_call=2)


def test_full_runners_give_the_model_outputs(tiny):
    model, seq = _model_and_sequence(tiny)
    session = make_session(tiny["dense"])
    [y] = ort_full_runner(session, seq.x)()
    np.testing.assert_allclose(y, run_full(session, seq.x), atol=1e-7)
    np.testing.assert_allclose(torch_full_runner(model, seq.x)().numpy(), y, atol=1e-5)


def _signature(session):
    return ([(i.name, i.type, i.shape) for i in session.get_inputs()], [o.name for o in session.get_outputs()])


def _feeds(session, rng):
    return {i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
            for i in session.get_inputs()}


@pytest.mark.parametrize("kind", ["dense", "step", "chunk", "int8"])
def test_the_call_floor_has_the_models_signature_and_only_copies(tiny, kind):
    session = make_session(tiny[kind])
    floor = make_session(call_floor_model(session))
    assert _signature(floor) == _signature(session)
    feeds = _feeds(session, np.random.default_rng(0))
    first = session.get_inputs()[0].name
    for o, value in zip(floor.get_outputs(), floor.run(None, feeds)):
        source = o.name[: -len("_out")] if o.name.endswith("_out") else first
        np.testing.assert_array_equal(value, feeds[source])  # states carried unchanged, y a copy of x


def test_runners_work_on_the_call_floor(tiny):
    _, seq = _model_and_sequence(tiny)
    step = make_session(call_floor_model(make_session(tiny["step"])))
    run = ort_step_runner(step, seq.x)
    for t in range(seq.x.shape[1] + 1):  # through the reset at the end of the sequence
        np.testing.assert_array_equal(run(), seq.x[:, t % seq.x.shape[1]].numpy())
    [y] = ort_full_runner(make_session(call_floor_model(make_session(tiny["dense"]))), seq.x)()
    np.testing.assert_array_equal(y, seq.x.numpy())


def test_call_floor_of_graphs_it_cannot_feed_or_with_more_outputs_than_inputs():
    from onnx import TensorProto, helper

    def model(in_type, outputs):
        nodes = [helper.make_node("Identity", ["a"], [o]) for o in outputs]
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", in_type, [2])],
                                  [helper.make_tensor_value_info(o, in_type, [2]) for o in outputs])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)

    assert call_floor_model(make_session(model(TensorProto.STRING, ["b"]))) is None
    floor = make_session(call_floor_model(make_session(model(TensorProto.INT64, ["b", "c"]))))
    a = np.array([3, 4], dtype=np.int64)
    for value in floor.run(None, {"a": a}):
        np.testing.assert_array_equal(value, a)


def test_torch_threads_are_restored():
    before = torch.get_num_threads()
    with torch_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="'threads' parameter must be an int >= 1"):
        with torch_threads(0):
            pass
