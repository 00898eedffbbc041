"""Networks: building blocks, the registered generators/discriminators and the autoencoders'
encoders/decoders (importing a module registers its builders)."""

from ssgen.nets import autoencoder, dcgan, resnet
from ssgen.nets import resnet18, vit  # noqa: F401  (registration)
from ssgen.nets.base import Discriminator, Generator
from ssgen.nets.blocks import sn_conv, sn_linear

__all__ = ["Discriminator", "Generator", "autoencoder", "dcgan", "resnet", "sn_conv", "sn_linear"]
