"""The one place that turns a model name or path into a model.

- `load(model, gan_model=, alpha=, flip_ensemble=)`: any form -> a uint8 upscaler (`loading`).
- `load_generator(...)`: the same for forms with a Keras generator (runs, packed models).
- `resolve(name_or_path)`, `zoo.entries()`: the shipped models (`zoo`).
- `layout`: how each form looks on disk; `runs`: training folders; `packed`: the int8 format.

Imported lazily, so `zoo` and `layout` can be used without loading TensorFlow.
"""

import importlib

_API = {"load": "loading", "load_generator": "loading", "assign_generator": "loading",
        "interpolate_generators": "loading", "choose": "loading", "weights_file": "loading",
        "resolve": "zoo"}

__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(f"tf_stacksr.models.{_API[name]}"), name)
    raise AttributeError(f"module 'tf_stacksr.models' has no attribute {name!r}")
