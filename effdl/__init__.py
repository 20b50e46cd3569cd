"""effdl: a teaching and reproduction kit for efficient deep learning."""

__version__ = "0.1.0"
