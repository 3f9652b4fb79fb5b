"""``selfbake evolve``: the model proposes its own tool and thinking prompts, races them on paired dev
items, half-bakes each winner as a new anchored layer (Prompt Baking, arXiv 2409.13697) and keeps it only
when it beats the previous model on confirm items; A- and B-cycles alternate until both plateau."""

from selfbake.evolve.config import EvolveConfig
from selfbake.evolve.engine import EvolveResult, evolve

__all__ = ["EvolveConfig", "EvolveResult", "evolve"]
