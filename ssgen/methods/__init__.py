"""Methods, one file each; importing this package registers them all."""

from ssgen.registry import METHODS
from ssgen.methods import encoder, gan, ssgan  # noqa: F401  (registration)
from ssgen.methods import colorization, context, denoising, split_brain  # noqa: F401  (registration)
from ssgen.methods import semisup  # noqa: F401  (registration)

__all__ = ["METHODS"]
