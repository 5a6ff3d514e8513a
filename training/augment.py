"""Augmentation presets, applied to whole batches of (N, 1, 48, 48) tensors in [0, 1].

Kornia runs each transform as one batched tensor op, so augmentation costs a few
milliseconds per batch instead of competing with the model for the two CPU cores.
"""
import kornia.augmentation as K
from torch import nn


def flip():
    """Mirror left-right, half of the time."""
    return K.RandomHorizontalFlip(p=0.5)


def rotate(degrees=10.0):
    """Rotate by up to +-degrees."""
    return K.RandomAffine(degrees=degrees, p=1.0)


def shift(fraction=0.1):
    """Translate by up to a fraction of the size, each axis."""
    return K.RandomAffine(degrees=0.0, translate=(fraction, fraction), p=1.0)


def scale(low=0.8, high=0.9):
    """Zoom by a factor in [low, high]."""
    return K.RandomAffine(degrees=0.0, scale=(low, high), p=1.0)


def erase(p=0.5):
    """Black out a random rectangle of 2-20% of the image, with probability p."""
    return K.RandomErasing(scale=(0.02, 0.2), ratio=(0.3, 3.3), value=0.0, p=p)


PRESETS = {
    "none": lambda: nn.Identity(),
    "flip": lambda: K.AugmentationSequential(flip()),
    "flip-rot-erase": lambda: K.AugmentationSequential(
        flip(), rotate(10), erase()),
    "flip-rot-shift-erase": lambda: K.AugmentationSequential(
        flip(), K.RandomAffine(degrees=10, translate=(0.1, 0.1), p=1.0), erase()),
    "flip-rot-shift-scale-erase": lambda: K.AugmentationSequential(
        flip(), K.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.8, 0.9), p=1.0), erase()),
    # random_apply=True shuffles the order; random_apply=1 picks one of the children.
    "order-oneof": lambda: K.AugmentationSequential(
        K.ImageSequential(flip(), shift(0.1), K.ImageSequential(rotate(10), scale(0.8, 0.9), random_apply=1),
                          random_apply=True),
        erase()),
    # Ours: wider geometry (both zoom directions, shear) plus lighting, since real photos vary
    # far more in exposure and contrast than the dataset's crops do.
    "strong": lambda: K.AugmentationSequential(
        flip(),
        K.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.85, 1.15), shear=8,
                       padding_mode="border", p=1.0),
        K.ColorJiggle(brightness=0.3, contrast=0.3, p=0.8),
        K.RandomGamma(gamma=(0.7, 1.4), p=0.3),
        erase(p=0.5)),
}


def build_augment(name):
    """Build a registered augmentation preset by name."""
    if name not in PRESETS:
        raise ValueError(f"unknown augmentation {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]()
