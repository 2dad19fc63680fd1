"""tf-stacksr: stacked-GAN face super-resolution in TensorFlow 2 / Keras 3.

The public API, imported lazily so that `import tf_stacksr` (and the `tf-stacksr` command's
help) does not pay for TensorFlow until something is used:

- `Config`: every training option (`tf_stacksr.config`).
- `build_generator(cfg)`, `build_discriminators(cfg)`: the Keras networks.
- `load_upscaler(path)`: a training run or exported SavedModel as a uint8 -> uint8 upscaler.
- `Trainer(cfg)`: networks, optimisers, checkpoint and train step of one run
  (`tf_stacksr.training.train_lib.train(cfg)` trains or resumes one).

The command-line tools are the modules `tf_stacksr.train`, `.evaluate`, `.export`,
`.enhance` and `.prepare` (or `tf-stacksr COMMAND`); their libraries are the `*_lib` modules.
No lazy name here shadows a submodule, so `from tf_stacksr import evaluate` stays the module.
"""

import importlib

__version__ = "0.1.0"

_API = {  # public name -> (module, attribute)
    "Config": ("tf_stacksr.config", "Config"),
    "build_generator": ("tf_stacksr.networks", "build_generator"),
    "build_discriminators": ("tf_stacksr.networks", "build_discriminators"),
    "load_model": ("tf_stacksr.models", "load"),
    "Trainer": ("tf_stacksr.training.train_lib", "Trainer"),
}

__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        module, attribute = _API[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'tf_stacksr' has no attribute {name!r}")
