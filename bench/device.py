"""What the benchmarks ran on, printed beside their numbers."""

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

