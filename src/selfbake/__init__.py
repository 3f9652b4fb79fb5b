"""selfbake: a language model improves itself.

Prompt baking (arXiv 2409.13697), self-evolving prompts, expert iteration,
distillation and synthetic data, offline on CPU and unchanged on real models.
The public API is re-exported lazily so ``import selfbake`` stays cheap.
"""

__version__ = "0.1.0"

from selfbake.errors import UserError

__all__ = ["UserError", "__version__"]
