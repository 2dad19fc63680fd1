"""tools/pack_model.py: packs a training run, or a weight average of two runs (--blend_with, --alpha)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, tiny_model_dir

from tf_stacksr import models
from tf_stacksr.models import layout, packed

TOOL = REPO / "tools" / "pack_model.py"


@pytest.mark.slow
def test_blend_packs_the_weight_average_and_records_both_sources(tmp_path):
    first, second = tiny_model_dir(tmp_path / "first", seed=1), tiny_model_dir(tmp_path / "second", seed=2)
    _, a = models.load_generator(first)
    cfg, b = models.load_generator(second)
    rng = np.random.default_rng(0)
    for weight in b.weights:  # untrained residual models are near zero: make the second one differ
        weight.assign(weight.numpy() + rng.normal(0, 0.1, weight.shape).astype(np.float32))
    second_packed = packed.pack(cfg, b, str(tmp_path / "second_packed"), source={"model_dir": "second"})
    _, b = models.load_generator(second_packed)  # what the tool reads: the dequantised weights
    out = tmp_path / "soup"
    run = subprocess.run([sys.executable, str(TOOL), f"--model_dir={first}", f"--blend_with={second_packed}",
                          "--alpha=0.25", f"--output={out}"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode == 0, run.stderr[-2000:]
    with open(out / layout.CONFIG_FILE) as fh:
        source = json.load(fh)["packed_from"]
    assert source["alpha"] == 0.25
    assert source["blend"][0]["model_dir"] == "first" and source["blend"][1] == {"model_dir": "second"}
    _, soup = packed.load(str(out))
    moved = 0.0
    for wa, wb, ws in zip(a.weights, b.weights, soup.weights):
        expected = 0.75 * wa.numpy() + 0.25 * wb.numpy()
        step = np.abs(expected).max() / 127 if expected.ndim >= 2 else 0  # int8 rounding of the average
        np.testing.assert_allclose(ws.numpy(), expected, atol=step / 2 + 1e-6, err_msg=ws.path)
        moved = max(moved, float(np.abs(ws.numpy() - wa.numpy()).max()))
    assert moved > 0.01  # the average is not just the first model
