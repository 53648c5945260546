"""gankit: train and use GAN audio generators without silent failures."""

__version__ = "0.1.0"
