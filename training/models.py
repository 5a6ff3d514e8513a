"""Model registry: every architecture the pipeline can train, built by name.

All models take (N, 1, 48, 48) normalised grey faces and return (N, 7) logits.
"""
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from modelfile import FACE_SIZE, LABELS

NUM_CLASSES = len(LABELS)


def conv_bn(c_in, c_out, kernel=3, stride=1, padding=1):
    """Conv -> BatchNorm -> ReLU, the building block of the VGG-style nets."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def mlp_head(c_in, hidden, dropout):
    """Global average pool, then fully connected layers of the given widths, then 7 logits."""
    layers = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    for width in hidden:
        layers += [nn.Linear(c_in, width), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        c_in = width
    layers.append(nn.Linear(c_in, NUM_CLASSES))
    return nn.Sequential(*layers)


def vgg_pairs(widths, kernel, pool_dropout=0.0):
    """Pairs of convs, one pair per width, each pair followed by a 2x2 max-pool."""
    padding = 1 if kernel == 3 else 0
    layers, c_in = [], 1
    for width in widths:
        layers += [conv_bn(c_in, width, kernel, padding=padding),
                   conv_bn(width, width, kernel, padding=padding),
                   nn.MaxPool2d(2)]
        if pool_dropout:
            layers.append(nn.Dropout(pool_dropout))
        c_in = width
    return nn.Sequential(*layers)


def model1():
    """The report's Model 1: three conv + max-pool layers and a small classifier."""
    return nn.Sequential(
        conv_bn(1, 32), nn.MaxPool2d(2),
        conv_bn(32, 64), nn.MaxPool2d(2),
        conv_bn(64, 128), nn.MaxPool2d(2),
        mlp_head(128, [256], dropout=0.5),
    )


def model2(kernel=3):
    """The report's Model 2: conv 32-32 | 64-64 | 128-128, GAP, FC 1024-1024-7."""
    return nn.Sequential(vgg_pairs([32, 64, 128], kernel), mlp_head(128, [1024, 1024], dropout=0.0))


def model3(kernel=3):
    """The report's Model 3: conv 64-64 | 128-128 | 256-256, dropout 0.5 after pools, FC 512-256-7."""
    return nn.Sequential(vgg_pairs([64, 128, 256], kernel, pool_dropout=0.5),
                         mlp_head(256, [512, 256], dropout=0.5))


def shallow():
    """Alizadeh & Fazel (2017) shallow baseline: 2 conv layers and 1 hidden FC layer."""
    return nn.Sequential(
        conv_bn(1, 32), nn.Dropout(0.25),
        conv_bn(32, 64), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(), nn.Linear(64 * 24 * 24, 512), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(512, NUM_CLASSES),
    )


def deep():
    """Alizadeh & Fazel (2017) deep baseline: 4 conv layers and 2 hidden FC layers."""
    return nn.Sequential(
        conv_bn(1, 64), nn.MaxPool2d(2),
        conv_bn(64, 128), nn.MaxPool2d(2),
        conv_bn(128, 512), nn.MaxPool2d(2),
        conv_bn(512, 512), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(512 * 3 * 3, 256), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(256, 512), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(512, NUM_CLASSES),
    )


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut; `mid` channels between them."""

    def __init__(self, c_in, c_out, stride, mid=None):
        super().__init__()
        mid = mid or c_out
        self.body = nn.Sequential(
            conv_bn(c_in, mid, stride=stride),
            nn.Conv2d(mid, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


def residual_stages(c_in, widths, blocks, first_stride, slim=()):
    """A stack of residual stages; every stage after the first halves the resolution.

    Blocks are numbered in order across the stages; those in `slim` have half as many
    channels between their two convs (their input and output widths are unchanged).
    """
    layers = []
    for i, (width, count) in enumerate(zip(widths, blocks)):
        for j in range(count):
            stride = (first_stride if i == 0 else 2) if j == 0 else 1
            mid = width // 2 if len(layers) in slim else width
            layers.append(BasicBlock(c_in, width, stride, mid))
            c_in = width
    return nn.Sequential(*layers)


def resnet18():
    """ResNet-18 adapted to 48x48: 3x3 stem at full resolution, no stem max-pool."""
    return nn.Sequential(conv_bn(1, 64), residual_stages(64, [64, 128, 256, 512], [2, 2, 2, 2], 1),
                         mlp_head(512, [], dropout=0.0))


def fernet(width=32, blocks=(1, 2, 2), dropout=0.3, slim=()):
    """A cheap strided stem, then residual stages at 24, 12 and 6 pixels (and 3 with a 4th block count).

    The stem spends few channels at 48x48, where a conv costs 4x what it costs at 24x24,
    and most blocks run at 12x12 and 6x6, so the net stays near 50 M multiply-accumulates.
    A stage at 3x3 adds many parameters for few multiply-accumulates. `slim` names residual
    blocks (0 is the first) whose inner width is halved, as `training.shrink --slim-block` leaves them.
    """
    w = width
    widths = [w * 2 ** i for i in range(len(blocks))]
    return nn.Sequential(
        conv_bn(1, w // 2),
        conv_bn(w // 2, w, stride=2),
        residual_stages(w, widths, blocks, first_stride=1, slim=slim),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
        nn.Linear(widths[-1], NUM_CLASSES),
    )


MODELS = {
    "model1": model1,
    "model2-k2": lambda: model2(kernel=2),
    "model2-k3": lambda: model2(kernel=3),
    "model3-k2": lambda: model3(kernel=2),
    "model3-k3": lambda: model3(kernel=3),
    "shallow": shallow,
    "deep": deep,
    "resnet18": resnet18,
    "fernet": fernet,
    "fernet-wide": lambda: fernet(width=48),
    "fernet-w40": lambda: fernet(width=40),
    "fernet-133": lambda: fernet(blocks=(1, 3, 3)),
    "fernet-022": lambda: fernet(blocks=(0, 2, 2)),
    "fernet-112": lambda: fernet(blocks=(1, 1, 2)),
    "fernet-s0": lambda: fernet(slim=(0,)),
    "fernet-s02": lambda: fernet(slim=(0, 2)),
    "fernet4": lambda: fernet(blocks=(1, 2, 2, 1)),
}


def build_model(name):
    """Build a registered model by name."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return MODELS[name]()


@dataclass
class ModelCost:
    params: int
    macs: int


def model_cost(model):
    """Parameter count and multiply-accumulates for one 48x48 image."""
    params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 1, FACE_SIZE, FACE_SIZE))
    model.train(was_training)
    return ModelCost(params=params, macs=counter.get_total_flops() // 2)


def main():
    """Print every registered model's parameter count and multiply-accumulates per image."""
    print(f"{'model':12s} {'parameters':>12s} {'MACs / image':>14s}")
    for name in MODELS:
        cost = model_cost(build_model(name))
        print(f"{name:12s} {cost.params:>12,} {cost.macs / 1e6:>12.1f} M")


if __name__ == "__main__":
    main()
