"""iBOT (Zhou et al., ICLR 2022): DINO's self-distillation of the class token across views, plus
masked image modelling with the teacher as the tokenizer: the student sees its global views with
blocks of patches masked (BEiT's block-wise masks, a ratio drawn from `mask_ratio`, on a share
`mask_probability` of the views), and on every masked patch matches the teacher's softmax of the
same view's unmasked patch (losses/distillation.py). One head serves the class token and the
patches (iBOT's shared head).

It needs the patch tokens of a ViT encoder, so it runs the student on its global views itself
(the shared pass of the carrier gives pooled features only); the local views take the shared
pass. On a GAN it would need a ViT discriminator, which ssgen does not ship.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ssgen.config import bounded
from ssgen.errors import ConfigError
from ssgen.losses.distillation import IBOTPatchLoss
from ssgen.pretext.masks import patch_block_masks
from ssgen.registry import TASKS
from ssgen.step import Batch, Progress
from ssgen.augment import augmented_views
from ssgen.tasks.base import TaskInputs
from ssgen.tasks.dino import DINO, DINOConfig


@dataclass
class IBOTConfig(DINOConfig):
    name: str = "ibot"
    mask_ratio: list[float] = field(default_factory=lambda: [0.1, 0.5])  # of a masked view's patches
    mask_probability: float = bounded(0.5, minimum=0.0, maximum=1.0)     # views that are masked at all
    patch_weight: float = bounded(1.0, minimum=0.0)                       # of the patch loss beside DINO's
    patch_teacher_temp: float = bounded(0.07, above=0.0)


@TASKS.register("ibot")
class IBOT(DINO):
    Config = IBOTConfig

    def __init__(self, cfg: IBOTConfig, encoder, data, spectral_norm: bool = False):
        if not hasattr(encoder, "tokens"):
            raise ConfigError(f"the ibot task masks patch tokens; the {type(encoder).__name__} encoder has none: "
                              "use encoder vit (on a GAN, a ViT discriminator would be needed)")
        low, high = cfg.mask_ratio if len(cfg.mask_ratio) == 2 else (None, None)
        if low is None or not 0 <= low <= high <= 1:
            raise ConfigError(f"mask_ratio: {cfg.mask_ratio!r} is invalid; "
                              "expected [low, high] with 0 <= low <= high <= 1")
        super().__init__(cfg, encoder, data, spectral_norm)
        # Not a submodule: the carrier belongs to the method; this task runs it on masked views.
        self.__dict__["carrier"] = encoder
        self.grid = data.resolution // encoder.patch_size  # patches a side of a global view
        # The coming step's masks, drawn on the host before it (before_step): the drawing loops
        # in Python, which a compiled step cannot hold; copied in place while the shape holds.
        self.register_buffer("step_masks", torch.zeros(0, 0, dtype=torch.bool), persistent=False)
        self.patch_criterion = IBOTPatchLoss(cfg.prototypes, cfg.student_temp, cfg.patch_teacher_temp,
                                             cfg.warmup_teacher_temp, cfg.warmup_steps, cfg.center_momentum)

    def inputs(self, batch: Batch, progress: Progress) -> TaskInputs:
        views = augmented_views(self.augment, batch.images)
        # The local views go through the shared pass; the global ones are the task's own.
        return TaskInputs(views[self.global_views:], views[: self.global_views])

    def masks(self, n: int) -> torch.Tensor:
        """bool [n, patches] on the CPU: block-wise masks on a `mask_probability` share of n views."""
        masks = patch_block_masks(n, self.grid, *self.cfg.mask_ratio)
        masked = torch.rand(n) < self.cfg.mask_probability
        return masks & masked[:, None]

    def before_step(self, batch: Batch, progress: Progress) -> None:
        masks = self.masks(self.global_views * len(batch.images)).to(self.step_masks.device)
        if masks.shape == self.step_masks.shape:
            self.step_masks.copy_(masks)
        else:
            self.step_masks = masks

    def loss(self, features, inputs, progress):
        global_views = inputs.targets
        masks = self.step_masks
        if masks.shape[0] != sum(len(v) for v in global_views):
            raise RuntimeError("ibot: no masks for this batch; the method calls before_step(batch) before each step")
        tokens = self.carrier.tokens(torch.cat(global_views), masks)           # [G * B, 1 + P, D]
        student_classes = self.head(tokens[:, 0]).chunk(self.global_views)
        student_patches = self.head(tokens[:, 1:])
        local = list(self.head(torch.cat(features)).split([len(f) for f in features])) if features else []
        with torch.no_grad():
            teacher_encoder, teacher_head = self.teacher.copy
            teacher_tokens = teacher_encoder.tokens(torch.cat(global_views))
            teacher_classes = teacher_head(teacher_tokens[:, 0]).chunk(self.global_views)
            teacher_patches = teacher_head(teacher_tokens[:, 1:])
        step = progress.step - 1
        class_loss = self.criterion([*student_classes, *local], list(teacher_classes), step)
        patch_loss = self.patch_criterion(student_patches, teacher_patches, masks, step)
        agreement = (student_classes[0].argmax(1) == teacher_classes[1].argmax(1)).float().mean()
        return class_loss + self.cfg.patch_weight * patch_loss, {"acc": agreement}
