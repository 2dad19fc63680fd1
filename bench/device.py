"""What the benchmarks ran on, printed beside their numbers, and how they time an upscaler."""

import time

import numpy as np
import tensorflow as tf


def cpu_name() -> str:
    """The device the step ran on: the GPU if there is one, else the CPU model."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def faces_per_second(upscale, faces: np.ndarray, repeats: int) -> float:
    """Faces per second of `upscale(faces)`: the median of `repeats` calls after a warm-up call."""
    upscale(faces)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        upscale(faces)
        times.append(time.perf_counter() - t0)
    return len(faces) / float(np.median(times))
