"""Read the tensors and attributes of a TorchScript archive without importing torch.

A TorchScript `.pt` file is a zip: `<prefix>/data.pkl` pickles the module tree (objects of
classes named `__torch__.*` whose state dicts hold tensors and plain attributes), and each
tensor's storage is a raw little-endian buffer in `<prefix>/data/<key>`. Unpickling with
stand-ins for the few torch callables involved gives the weights as numpy arrays, so the FID
network can be converted to Keras without torch being installed.
"""

from __future__ import annotations

import pickle
import zipfile
from typing import Any

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _ScriptModule:
    """Stand-in for any pickled `__torch__.*` object; its state becomes its `__dict__`."""


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    itemsize = storage.dtype.itemsize
    if not size:
        return np.array(storage[storage_offset])
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride))
    return np.array(view)  # own the memory, contiguous


class _Unpickler(pickle.Unpickler):
    def __init__(self, archive: zipfile.ZipFile, prefix: str, path: str):
        super().__init__(archive.open(f"{prefix}/data.pkl"))
        self._archive, self._prefix, self._path = archive, prefix, path

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__"):
            return _ScriptModule
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if module == "collections" and name == "OrderedDict":
            return dict
        if module == "torch.jit._pickle" and name == "build_intlist":
            return list
        raise pickle.UnpicklingError(f"{self._path}: unsupported object {module}.{name} in TorchScript pickle")

    def persistent_load(self, pid: Any) -> np.ndarray:
        kind, dtype, key, _location, numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"{self._path}: unsupported persistent id {pid!r}")
        raw = self._archive.read(f"{self._prefix}/data/{key}")
        return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"), count=numel)


def read_torchscript(path: str) -> dict[str, Any]:
    """Flat `{dotted.name: value}` of every tensor (numpy) and scalar/list attribute in the module tree.

    Names follow the TorchScript module paths, e.g. `net.layers.mixed_4.tower.conv_1.weight`.
    """
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{path}: expected one <prefix>/data.pkl in a TorchScript archive, found {pickles}")
        root = _Unpickler(archive, pickles[0][: -len("/data.pkl")], path).load()
    flat: dict[str, Any] = {}

    def walk(obj: Any, prefix: str) -> None:
        for key, value in vars(obj).items():
            name = f"{prefix}{key}"
            if isinstance(value, _ScriptModule):
                walk(value, name + ".")
            elif isinstance(value, (np.ndarray, int, float, list, tuple)) and not isinstance(value, bool):
                flat[name] = value

    walk(root, "")
    return flat
