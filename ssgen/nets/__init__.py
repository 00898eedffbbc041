"""Networks: building blocks and the registered generators/discriminators."""

from ssgen.nets.blocks import sn_conv, sn_linear

__all__ = ["sn_conv", "sn_linear"]
