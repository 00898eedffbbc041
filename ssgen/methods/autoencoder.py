"""What the four pretext-task autoencoders share (denoising, context, split_brain, colorization):
an encoder-decoder from the config, one optimizer, a train step of `loss(x)`, and probe
features from the encoder. A subclass says what its network sees and predicts (`loss`),
which view of an image its encoder reads (`encoder_input`) and what it shows (`image_grids`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ssgen.config import MethodConfig, NetConfig, OptimConfig, net
from ssgen.methods.base import Method
from ssgen.nets.autoencoder import EncoderDecoder, build_autoencoder
from ssgen.registry import DECODERS, ENCODERS
from ssgen.step import Batch, DataInfo, Progress


@dataclass
class AutoencoderConfig(MethodConfig):
    # No spectral norm: nothing here is a critic whose Lipschitz constant matters.
    encoder: NetConfig = net(ENCODERS, width=128, spectral_norm=False)
    decoder: NetConfig = net(DECODERS, width=128, spectral_norm=False)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4, betas=[0.5, 0.999]))


def grid_generator(real: torch.Tensor) -> torch.Generator:
    """The same corruption at every image grid, so grids compare across steps, and none of the
    training random stream used up (a resumed run stays bitwise identical)."""
    return torch.Generator(real.device).manual_seed(0)


class Autoencoder(Method):
    Config = AutoencoderConfig

    def __init__(self, cfg: AutoencoderConfig, data: DataInfo):
        super().__init__(cfg, data)
        self.nets = torch.nn.ModuleDict(self.build_networks())
        encoder = next(iter(self.nets.values())).encoder
        self.feature_layers = ["encoder", *encoder.block_names]

    def autoencoder(self, in_channels: int, out_channels: int, width_divisor: int = 1) -> EncoderDecoder:
        return build_autoencoder(self.cfg.encoder, self.cfg.decoder, self.data.resolution,
                                 in_channels, out_channels, width_divisor)

    def build_networks(self) -> dict[str, EncoderDecoder]:
        """The encoder-decoders to train, by name; their encoders' features are concatenated."""
        raise NotImplementedError

    def encoder_inputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """What each network's encoder reads of clean [-1, 1] images, for the probe."""
        return {name: x for name in self.nets}

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The pretext loss on a batch of clean [-1, 1] images, and what to log."""
        raise NotImplementedError

    def optimized(self):
        return {"autoencoder": (list(self.nets.parameters()), self.cfg.optim)}

    steps = ("autoencoder",)

    def autoencoder_step(self, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        loss, logs = self.loss(batch.images)
        self.optimize("autoencoder", loss)
        return logs

    def compile_networks(self) -> None:
        for network in self.nets.values():
            network.compile()

    def compute_features(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        views = self.encoder_inputs(x)
        per_net = [net.encoder.block_features(views[name], layers) for name, net in self.nets.items()]
        return {layer: torch.cat([f[layer] for f in per_net], dim=1).float() for layer in layers}
