"""softprompt: soft prompts, deep prefixes and prompt ensembles on frozen T5 models."""

from softprompt.errors import SoftpromptError

__version__ = "0.1.0"
__all__ = ["SoftpromptError", "__version__"]
