"""Training: the train step under tf.distribute (`train_lib`), the loss terms (`losses`), strategy and precision (`distribute`)."""
