"""Per-image augmentations on the training device: several views of one batch."""

from ssgen.augment.views import NO_AUGMENTATION, PRESETS, Augmenter, ViewConfig, augmented_views, view_configs

__all__ = ["NO_AUGMENTATION", "PRESETS", "Augmenter", "ViewConfig", "augmented_views", "view_configs"]
