"""textgen: recurrent text generation and sequence-level training."""

__version__ = "0.1.0"
