"""Face data: alignment, preparation into shards, and tf.data training pairs."""
