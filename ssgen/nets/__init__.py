"""Networks: building blocks and the registered generators/discriminators (importing a
module registers its builders)."""

from ssgen.nets import dcgan, resnet
from ssgen.nets.base import Discriminator, Generator
from ssgen.nets.blocks import sn_conv, sn_linear

__all__ = ["Discriminator", "Generator", "dcgan", "resnet", "sn_conv", "sn_linear"]
