"""textgen: recurrent text generation and sequence-level training.

`textgen.load(path)` returns a Translator or a LanguageModel (see textgen.api); torch is imported only
then, so importing the package (and `textgen --help`) stays cheap.
"""

from textgen.errors import UserError  # no torch behind it: the package root stays cheap to import

__version__ = "0.1.0"


def load(path, device: str = "auto"):
    """The model in a textgen checkpoint: a Translator (translate, score) or a LanguageModel (sample, score)."""
    from textgen.api import load as _load

    return _load(path, device)


__all__ = ["load", "UserError", "__version__"]
