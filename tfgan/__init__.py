"""tfgan: spectrogram GANs for audio in TensorFlow/Keras.

Importing the package has no side effects and does not import TensorFlow;
`tfgan.train(config, run_dir)` loads the trainer on first use.
"""

__version__ = "0.1.0"


def __getattr__(name):
    if name == "train":
        from tfgan.trainer import train

        return train
    raise AttributeError(f"module 'tfgan' has no attribute {name!r}")
