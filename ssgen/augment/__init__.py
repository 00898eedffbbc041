"""Per-image augmentations on the training device: several views of one batch."""

from ssgen.augment.views import NO_AUGMENTATION, PRESETS, Augmenter, ViewConfig, view_configs

__all__ = ["NO_AUGMENTATION", "PRESETS", "Augmenter", "ViewConfig", "view_configs"]
