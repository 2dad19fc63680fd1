"""Train the stacked SR GAN: `python -m tf_stacksr.train --flagfile=configs/quickstart.flags`.

Thin entry point: flags -> Config -> train_lib.train. Rerunning the same command resumes from
the latest checkpoint in --model_dir. A flag after --flagfile overrides the file's value.
"""

from tf_stacksr import startup  # first: hides TensorFlow's start-up lines

from absl import app, flags

from tf_stacksr import config as config_lib

config_lib.define_flags()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        cfg = config_lib.from_flags(flags.FLAGS)
        cfg.check_data_dir()
    except ValueError as err:
        raise app.UsageError(str(err)) from err
    from tf_stacksr.training import train_lib  # TensorFlow loads here, after the flags are checked

    train_lib.train(cfg)


if __name__ == "__main__":
    startup.run(main, config_lib.flag_groups(config_lib.Config))
