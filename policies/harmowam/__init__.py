"""HarmoWAM at desktop scale: a latent world model that imagines the next frames, a predictive expert
(joint modeling, for contact) and a reactive expert (inverse dynamics from the imagined frames, for
transit), chosen by a learned process-adaptive gate (``gate.py``). See ``model.py`` for the parts,
``policy.py`` for the runtime policy and ``checkpoint.py`` for the files."""

from policies.harmowam.config import HarmoWAMConfig
from policies.harmowam.model import HarmoWAM, World

__all__ = ["HarmoWAM", "HarmoWAMConfig", "World"]
