"""What the speed benchmarks measure with: the matmul reference rate, conv FLOPs of a traced
graph, the median time of a call, the share of op time per TensorFlow op type, and real LR
faces to time models on.

FLOPs are 2 x multiply-adds of every Conv2D, Conv2DBackpropInput (forward pass of a transposed
conv, or backward pass of a conv), Conv2DBackpropFilter and MatMul op that a function's outputs
depend on, from their static shapes; elementwise work (norms, activations, resizes, losses) is
not counted (the usual model-FLOPs convention), so GFLOP/s means useful convolution work.
"""

from __future__ import annotations

import collections
import glob
import os
import tempfile
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from tf_stacksr.data import pairs
from tf_stacksr.data.pipeline import load_face

FACES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "celeba")


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Best-of-`repeats` float32 n x n matmul rate (GFLOP/s) on the default device."""
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.linalg.matmul(x, y)))
    matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _static(shape) -> list[int]:
    return [int(d) for d in shape]


def op_flops(op: tf.Operation) -> int:
    """2 x multiply-adds of one conv or matmul op (0 for every other op)."""
    if op.type == "Conv2D":
        kh, kw, cin, _ = _static(op.inputs[1].shape)
        return 2 * int(np.prod(_static(op.outputs[0].shape))) * kh * kw * cin
    if op.type in ("Conv2DBackpropInput", "Conv2DBackpropFilter"):
        # Both are a full conv over out_backprop [N, Ho, Wo, Cout] with the [kh, kw, Cin, Cout] filter
        # (an input of BackpropInput, the output of BackpropFilter).
        kernel = op.inputs[1] if op.type == "Conv2DBackpropInput" else op.outputs[0]
        kh, kw, cin, _ = _static(kernel.shape)
        return 2 * int(np.prod(_static(op.inputs[2].shape))) * kh * kw * cin
    if op.type == "MatMul":
        a, b = _static(op.inputs[0].shape), _static(op.inputs[1].shape)
        m, k = (a[1], a[0]) if op.get_attr("transpose_a") else (a[0], a[1])
        n = b[0] if op.get_attr("transpose_b") else b[1]
        return 2 * m * n * k
    return 0


def live_ops(graph) -> set[str]:
    """Names of the ops the function's outputs depend on: the rest is pruned before it runs."""
    live, stack = set(), [t.op for t in graph.outputs]
    while stack:
        op = stack.pop()
        if op.name in live:
            continue
        live.add(op.name)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return live


def graph_flops(concrete: tf.types.experimental.ConcreteFunction) -> int:
    """Conv/matmul FLOPs of one call of a traced function, counting only ops that actually run."""
    graph = concrete.graph
    calls = sorted({op.type for op in graph.get_operations() if op.type.endswith("PartitionedCall")})
    if calls:
        raise RuntimeError(f"the graph calls nested functions ({calls}): their FLOPs would be missed")
    live = live_ops(graph)
    return sum(op_flops(op) for op in graph.get_operations() if op.name in live)


def median_seconds(call: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of `call()` over `repeats` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def faces_per_second(upscale: Callable[[np.ndarray], object], faces: np.ndarray, repeats: int) -> float:
    """Faces per second of `upscale(faces)`: the median of `repeats` calls after a warm-up call."""
    return len(faces) / median_seconds(lambda: upscale(faces), repeats)


def budget_seconds(call: Callable[[], object], budget: float, most: int = 200) -> float:
    """Median wall time of `call()` over as many calls as fit in `budget` seconds (3 to `most`),
    after one warm-up call; the count is set from one timed call."""
    first = median_seconds(call, repeats=1)
    return median_seconds(call, repeats=int(min(most, max(3, budget / first))), warmup=0)


def op_time_shares(call: Callable[[], object], calls: int = 3, top: int = 12) -> list[tuple[str, float]]:
    """Share of traced op time per TF op type over `calls` calls of `call` (the `top` largest)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    call()
    logdir = tempfile.mkdtemp(prefix="stacksr_profile_")
    tf.profiler.experimental.start(logdir)
    for _ in range(calls):
        call()
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as fh:
        space.ParseFromString(fh.read())
    per_type: dict[str, float] = collections.Counter()
    for plane in space.planes:
        names = {k: m.name for k, m in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" not in name or "::" in name or name.startswith("__"):
                    continue  # not a TF op event ("op_name:OpType"): executor and thread-pool markers
                op_type = name.rsplit(":", 1)[1].strip()
                if op_type in ("StatefulPartitionedCall", "PartitionedCall", "While", "If") or op_type.startswith("__"):
                    continue  # function calls: their ops are counted themselves
                per_type[op_type] += event.duration_ps / 1e12
    total = sum(per_type.values()) or 1.0
    return [(k, v / total) for k, v in sorted(per_type.items(), key=lambda kv: -kv[1])[:top]]


def hr_faces(hr_size: int, count: int) -> tf.Tensor:
    """`count` fixture faces (repeated as needed), loaded at `hr_size` as training loads them."""
    files = sorted(glob.glob(os.path.join(FACES, "*.jpg")))
    return tf.stack([load_face(tf.constant(files[i % len(files)]), hr_size) for i in range(count)])


def lr_faces(lr_size: int, hr_size: int, count: int) -> np.ndarray:
    """`count` uint8 LR faces made from the fixture faces exactly as training makes them."""
    return pairs.float_to_uint8(pairs.downscale(hr_faces(hr_size, count), lr_size)).numpy()


def fixed_batch(cfg):
    """One real training batch (inputs, targets) of fixture faces, made as in training."""
    ex = pairs.make_pairs(hr_faces(cfg.hr_size, cfg.batch_size), cfg.stage_sizes)
    return ex["inputs"], ex["targets"]
