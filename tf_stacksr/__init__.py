"""tf-stacksr: stacked-GAN face super-resolution in TensorFlow 2 / Keras 3.

The public API, imported lazily so that `import tf_stacksr` (and the `tf-stacksr` command's
help) does not pay for TensorFlow until something is used:

- `Config`: every training option (`tf_stacksr.config`).
- `build_generator(cfg)`, `build_discriminators(cfg)`: the Keras networks.
- `load_upscaler(path)`: a training run or exported SavedModel as a uint8 -> uint8 upscaler.
- `train(cfg)`: train or resume a run.
- `export(model_dir, export_dir)`: write a SavedModel for TensorFlow Serving.
- `evaluate(options)`: FID / PSNR / SSIM / identity tables.
"""

import importlib

__version__ = "0.1.0"

_API = {
    "Config": "tf_stacksr.config",
    "build_generator": "tf_stacksr.networks",
    "build_discriminators": "tf_stacksr.networks",
    "load_upscaler": "tf_stacksr.inference",
    "train": "tf_stacksr.train_lib",
    "export": "tf_stacksr.export_lib",
    "evaluate": "tf_stacksr.eval_lib",
}

__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'tf_stacksr' has no attribute {name!r}")
