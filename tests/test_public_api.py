"""The names the package promises at top level resolve to the real objects."""

import subprocess
import sys

import tf_stacksr
from conftest import REPO


def test_every_public_name_resolves():
    from tf_stacksr import config, eval_lib, export_lib, inference, networks, train_lib

    expected = {"Config": config.Config, "build_generator": networks.build_generator,
                "build_discriminators": networks.build_discriminators, "load_upscaler": inference.load_upscaler,
                "train": train_lib.train, "export": export_lib.export, "evaluate": eval_lib.evaluate}
    assert sorted(expected) == tf_stacksr.__all__
    for name, obj in expected.items():
        assert getattr(tf_stacksr, name) is obj


def test_import_is_lazy():
    code = "import sys, tf_stacksr; assert 'tensorflow' not in sys.modules, 'eager TF import'; print(tf_stacksr.__version__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
