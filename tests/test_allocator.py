"""The malloc settings every command applies at start-up (their speed: `python -m bench.allocator`)."""

import os
import platform
import subprocess
import sys

import pytest

from tf_stacksr import allocator


class FakeLibc:
    """A C library whose mallopt records its calls and answers `answer` (1: done, 0: refused)."""

    def __init__(self, answer: int):
        self.calls = []

        def mallopt(param, value):
            self.calls.append((param, value))
            return answer

        self.mallopt = mallopt


@pytest.fixture
def clean_env(monkeypatch):
    for name in [k for k in os.environ if k.startswith("MALLOC_") or k == "GLIBC_TUNABLES"]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_each_setting_reaches_mallopt(clean_env):
    libc = FakeLibc(answer=1)
    clean_env.setattr(allocator.ctypes, "CDLL", lambda name: libc)
    assert allocator.keep_freed_memory()
    assert dict(libc.calls) == {-2: 64 << 20, -3: 32 << 20, -1: 128 << 20}  # M_TOP_PAD, M_MMAP_THRESHOLD, M_TRIM_THRESHOLD


def test_a_c_library_that_ignores_mallopt_reports_false(clean_env):
    clean_env.setattr(allocator.ctypes, "CDLL", lambda name: FakeLibc(answer=0))  # musl's mallopt does nothing
    assert not allocator.keep_freed_memory()


@pytest.mark.parametrize("name,value", [("MALLOC_ARENA_MAX", "2"), ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0")])
def test_the_users_own_malloc_variables_win(clean_env, name, value):
    libc = FakeLibc(answer=1)
    clean_env.setattr(allocator.ctypes, "CDLL", lambda _: libc)
    clean_env.setenv(name, value)
    assert not allocator.keep_freed_memory() and libc.calls == []


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_accepts_every_value():
    """glibc takes every setting (mallopt answers 0 for a parameter or value it refuses)."""
    code = "from tf_stacksr import allocator; print(allocator.keep_freed_memory())"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "True"
