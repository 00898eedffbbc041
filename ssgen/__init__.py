"""ssgen: self-supervised generative modelling (SS-GAN, GAN baselines, self-supervised tasks,
pretext-task autoencoders), from the command line (`ssgen --help`) or as a library.

The public API, for a training loop of one's own (examples/library.py shows them together):

    data          load_images, to_float, to_uint8
    augmentation  augmenter (a preset by name), Augmenter, view_configs, PRESETS
    tasks/losses  rotation_loss, rotate4, nt_xent, info_nce, byol_loss, DINOLoss
    evaluation    linear_probe (features one extracted), knn_accuracy
    trained runs  load_checkpoint (D's features, samples)
    training      load_config, and ssgen.train.train(cfg): what `ssgen train` runs

Everything else is internal and may change between versions.
"""

from importlib import import_module

__version__ = "0.1.0"

# Where each public name lives. Imported on first use (PEP 562), so that `import ssgen` stays light
# and the package's own modules import each other without a cycle through this file.
_PUBLIC = {
    "load_images": "ssgen.library", "augmenter": "ssgen.library", "rotation_loss": "ssgen.library",
    "linear_probe": "ssgen.library", "load_checkpoint": "ssgen.library",
    "to_float": "ssgen.images", "to_uint8": "ssgen.images",
    "Augmenter": "ssgen.augment", "view_configs": "ssgen.augment", "PRESETS": "ssgen.augment",
    "rotate4": "ssgen.pretext.rotation",
    "nt_xent": "ssgen.losses.contrastive", "info_nce": "ssgen.losses.contrastive",
    "byol_loss": "ssgen.losses.distillation", "DINOLoss": "ssgen.losses.distillation",
    "knn_accuracy": "ssgen.eval.knn",
    "load_config": "ssgen.config",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'ssgen' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)


def __dir__():
    return [*globals(), *__all__]
