"""Per-image augmentations on the training device: several views of one batch."""

from ssgen.augment.views import PRESETS, Augmenter, ViewConfig, augmented_views, view_configs

__all__ = ["PRESETS", "Augmenter", "ViewConfig", "augmented_views", "view_configs"]
