"""ssgen: self-supervised generative modelling (SS-GAN, GAN baselines, pretext-task autoencoders)."""

__version__ = "0.1.0"
