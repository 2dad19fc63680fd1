"""Train the stacked SR GAN: `python -m tf_stacksr.train --flagfile=configs/quickstart.flags`.

Thin entry point: flags -> Config -> train_lib.train. Rerunning the same command resumes from
the latest checkpoint in --model_dir (or, if that one cannot be read, the newest that can). A
flag after --flagfile overrides the file's value.
"""

from tf_stacksr import startup  # first: hides TensorFlow's start-up lines

from absl import app, flags, logging

from tf_stacksr import config as config_lib

config_lib.define_flags()


def _devices() -> str:
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    return f"{gpus} GPU{'s' if gpus > 1 else ''}" if gpus else "the CPU (no GPU found)"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        cfg = config_lib.from_flags(flags.FLAGS)
        cfg.check_data_dir()
    except ValueError as err:
        raise app.UsageError(str(err)) from err
    # Nothing else is printed until the first progress line, minutes later on a CPU: say what comes.
    logging.info("%s", cfg.summary())
    logging.info("Loading TensorFlow")
    from tf_stacksr.training import train_lib  # TensorFlow loads here, after the flags are checked

    compiles = "compiles the train step with XLA (--jit_compile: a minute or two on 2 CPU cores)" if cfg.jit_compile \
        else "compiles the train step"
    logging.info("On %s: building the networks and the input pipeline, then the first step %s. "
                 "The first progress line comes about 20 s after the start for configs/quickstart.flags on 2 "
                 "idle CPU cores (later on a busy machine or for a bigger model), then one every %d steps "
                 "(--log_every)", _devices(), compiles, cfg.log_every)
    from tf_stacksr.models import runs

    try:
        train_lib.train(cfg)
    except runs.UnreadableCheckpointError as err:
        raise SystemExit(f"train: {err}") from None


if __name__ == "__main__":
    startup.run(main, config_lib.flag_groups(config_lib.Config))
