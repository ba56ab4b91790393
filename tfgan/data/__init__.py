"""Audio folders to tf.data spectrogram batches; the built-in procedural dataset."""
