"""The names the package promises at top level resolve to the real objects."""

import subprocess
import sys

from conftest import REPO

import tf_stacksr


def test_every_public_name_resolves():
    from tf_stacksr import config, models, networks
    from tf_stacksr.training import train_lib

    expected = {"Config": config.Config, "build_generator": networks.build_generator,
                "build_discriminators": networks.build_discriminators, "load_model": models.load,
                "Trainer": train_lib.Trainer}
    assert sorted(expected) == tf_stacksr.__all__
    for name, obj in expected.items():
        assert getattr(tf_stacksr, name) is obj


def test_import_is_lazy():
    code = "import sys, tf_stacksr; assert 'tensorflow' not in sys.modules, 'eager TF import'; print(tf_stacksr.__version__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_entry_point_modules_are_not_shadowed():
    import importlib.util
    import pkgutil

    modules = {m.name for m in pkgutil.iter_modules(tf_stacksr.__path__)}
    assert not modules & set(tf_stacksr.__all__)
    assert importlib.util.find_spec("tf_stacksr.evaluate") is not None
