"""What every command does first: keep TensorFlow's start-up lines off the terminal, keep freed
memory for reuse (`allocator`: much faster CPU training), and a useful `--help`.

Importing this module (each entry point does, before anything imports TensorFlow) sets
`TF_CPP_MIN_LOG_LEVEL=2` unless it is already set, which hides TensorFlow's C++ INFO and WARNING
lines, and the INFO lines of TensorFlow's Python modules (about writing a SavedModel or a
checkpoint) are dropped too.
TensorFlow ignores the variable for the lines it logs while it loads (the oneDNN notice, "All log
messages before absl::InitializeLog() ...", the cudart stub, the CPU feature guard), and on a
machine without an NVIDIA GPU it logs a harmless `failed call to cuInit` error when it first looks
for GPUs. So the first `import tensorflow` (and, without a GPU, that first look) runs with stderr
captured, and what passes the same level is written back: Python warnings, errors and anything
else that is not one of those lines come through unchanged.

A user who sets the variable keeps control: `TF_CPP_MIN_LOG_LEVEL=0` shows every line (nothing
is filtered), 1 shows warnings too. Library use (`import tf_stacksr`) is not affected: only the
command-line entry points import this module.

`run(main, groups)` is `absl.app.run(main)` for the absl commands (train, evaluate, export,
prepare), except that `--help` (also `-h`, `-?`, `--helpshort`) lists the command's own flags by
what they are for and exits 0, and `--helpfull` (every flag, absl's and TensorFlow's included)
exits 0 too.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
from typing import Callable, Sequence

from tf_stacksr import allocator

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LOG_LEVEL = "2"  # INFO and WARNING hidden, ERROR shown
_SEVERITIES = "IWEF"  # TensorFlow's (absl's) INFO, WARNING, ERROR, FATAL = levels 0-3
# A C++ log line: absl's "I0000 00:00:1795928373.585899   11720 port.cc:153] ..." or the older
# "2025-01-01 12:00:00.000000: I tensorflow/core/util/port.cc:153] ...".
_LOG_LINE = re.compile(r"^(?:(?P<absl>[IWEF])\d{4} [\d:.]+\s+\d+|[\d-]+ [\d:.]+: (?P<tsl>[IWEF])) \S+:\d+\] ")
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# ERROR lines that are harmless: GPU plugins registered twice; and, on a machine without an NVIDIA
# device, CUDA failing to find a GPU.
_HARMLESS_ERRORS = re.compile(r"Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered")
_NO_GPU_ERROR = "failed call to cuInit"
# Lines that start something of their own, never the continuation of a log line.
_OWN_LINE = re.compile(r"^(Traceback |\S.*:\d+: \w*(Warning|Error)\b)")


def min_log_level() -> int:
    try:
        return int(os.environ.get(LOG_LEVEL_VARIABLE, DEFAULT_LOG_LEVEL))
    except ValueError:
        return 0


def filter_startup_lines(text: str, level: int) -> str:
    """`text` (captured stderr) less the log lines below `level`, absl's banner and known harmless errors."""
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        match = _LOG_LINE.match(line)
        if match:
            severity = _SEVERITIES.index(match.group("absl") or match.group("tsl"))
            harmless = bool(_HARMLESS_ERRORS.search(line)) or (_NO_GPU_ERROR in line and not _has_nvidia_device())
            dropping = severity < level or (severity == 2 and harmless)
        elif line.rstrip("\n") == _ABSL_BANNER:
            dropping = True
            continue
        elif dropping and _OWN_LINE.match(line):
            dropping = False
        # Other lines continue the log line before them (e.g. the CPU feature guard's second line).
        if not dropping:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def filtered_stderr(level: int):
    """Capture file descriptor 2 (C++ and Python writes alike) and write back what `filter_startup_lines` keeps."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:  # a file, not a pipe: no writer can block on it
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = filter_startup_lines(captured.read().decode("utf-8", "replace"), level)
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()


def _has_nvidia_device() -> bool:
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/dxg", "/proc/driver/nvidia"))


class _TensorFlowInfoFilter(logging.Filter):
    """Drops INFO records that TensorFlow's own modules log through absl (e.g. "Sharding callback duration")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        tensorflow = sys.modules.get("tensorflow")
        location = getattr(tensorflow, "__file__", None)
        return not (location and record.pathname.startswith(os.path.dirname(location) + os.sep))


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader with stderr filtered; everything else is the original loader's."""

    def __init__(self, loader, level: int):
        self._loader, self._level = loader, level

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        with filtered_stderr(self._level):
            self._loader.exec_module(module)
            if not _has_nvidia_device():  # where CUDA's "no GPU" error is noise, let it happen here
                with contextlib.suppress(Exception):
                    module.config.list_physical_devices("GPU")


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """A one-shot import hook: wraps the loader of the first `import tensorflow`."""

    def __init__(self, level: int):
        self._level = level

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader, self._level)
        return spec


def quiet_tensorflow() -> None:
    """Hide TensorFlow's start-up lines below `TF_CPP_MIN_LOG_LEVEL` (default 2); idempotent."""
    os.environ.setdefault(LOG_LEVEL_VARIABLE, DEFAULT_LOG_LEVEL)
    level = min_log_level()
    if level >= 1:
        tf_logger = logging.getLogger("tensorflow")
        if tf_logger.level == logging.NOTSET:
            tf_logger.setLevel(logging.WARNING)
        from absl import logging as absl_logging  # first, so that the "absl" logger is absl's own class

        absl_logger = absl_logging.get_absl_logger()  # ours (training progress) and some of TensorFlow's
        if not any(isinstance(f, _TensorFlowInfoFilter) for f in absl_logger.filters):
            absl_logger.addFilter(_TensorFlowInfoFilter())
    if level <= 0 or "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowImport(level))


HELP_ARGUMENTS = ("-h", "-help", "--help", "-?", "--?", "-helpshort", "--helpshort")
FULL_HELP_ARGUMENTS = ("-helpfull", "--helpfull")
Groups = Sequence[tuple[str, Sequence[str]]]


def _default_text(flag) -> str | None:
    value = flag.default
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return repr(",".join(map(str, value)))
    return str(value)


def _render_flag(flag) -> str:
    from absl import flags

    name = f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"
    text = f"{name}: {flag.help}"
    default = _default_text(flag)
    if any("must have a value other than None" in getattr(v, "message", "") for v in flag.validators):
        text += " (required)"  # absl's flags.mark_flag_as_required
    elif default is not None:
        text += f" (default:\0{default})"  # \0: kept on one line by the wrapping
    return flags.text_wrap(text, indent="      ", firstline_indent="  ").replace("\0", " ")


def _project_flags(flag_values) -> list[str]:
    """Names of the flags declared by this package's modules (the entry point itself included)."""
    names = []
    for module, module_flags in flag_values.flags_by_module_dict().items():
        if "tf_stacksr" in module:
            names += [f.name for f in module_flags if f.name not in names]
    return names


def help_text(groups: Groups, doc: str | None = None, flag_values=None) -> str:
    """The command's docstring, then its flags section by section (those in no group last, as 'other')."""
    from absl import flags

    flag_values = flag_values or flags.FLAGS
    if doc is None:
        doc = getattr(sys.modules.get("__main__"), "__doc__", None) or f"usage: {sys.argv[0]} [flags]"
    listed = [name for _, names in groups for name in names]
    other = [name for name in _project_flags(flag_values) if name not in listed]
    lines = [doc.strip(), ""]
    for title, names in [*groups, *([("other", other)] if other else [])]:
        lines.append(f"{title}:")
        lines += [_render_flag(flag_values[name]) for name in names]
        lines.append("")
    lines.append(flags.text_wrap("--flagfile=FILE reads flags from FILE (one per line, e.g. configs/*.flags); "
                                 "--helpfull lists every flag, absl's and TensorFlow's included."))
    return "\n".join(lines)


def run(main: Callable[[list[str]], object], groups: Groups = ()) -> None:
    """`absl.app.run(main)` with the help described in the module docstring."""
    from absl import app

    args = sys.argv[1:]
    args = args[:args.index("--")] if "--" in args else args
    if any(arg in HELP_ARGUMENTS for arg in args):
        try:
            print(help_text(groups), flush=True)
        except BrokenPipeError:  # `--help | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    if any(arg in FULL_HELP_ARGUMENTS for arg in args):
        app.define_help_flags()
        app.usage(writeto_stdout=True)
        sys.exit(0)
    app.run(main)


quiet_tensorflow()
allocator.keep_freed_memory()
