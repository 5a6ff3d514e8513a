"""The pieces the training and evaluation scripts share: optimisers, schedulers, loops."""
import contextlib
import random

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from modelfile import FACE_SIZE, LABELS


class Normalize(nn.Module):
    """Map [0, 1] grey pixels to zero mean, unit variance with the training split's statistics."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x):
        return (x - self.mean) / self.std


def to_tensor(images):
    """uint8 (N, 48, 48) array -> float (N, 1, 48, 48) tensor in [0, 1]."""
    return torch.from_numpy(images).unsqueeze(1).float().div_(255.0)


OPTIMIZERS = {
    "adam": lambda params, lr, wd: torch.optim.AdamW(params, lr=lr, weight_decay=wd),
    "sgd": lambda params, lr, wd: torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd),
}

# Each entry: (factory(optimizer, cfg, steps_per_epoch), step unit). "batch" schedulers step
# every batch, "epoch" ones once per epoch, "plateau" once per epoch on validation accuracy.
SCHEDULERS = {
    "none": (lambda opt, cfg, n: torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0), "epoch"),
    "plateau": (lambda opt, cfg, n: torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="max", factor=cfg.gamma, patience=cfg.plateau_patience), "plateau"),
    "step": (lambda opt, cfg, n: torch.optim.lr_scheduler.StepLR(opt, cfg.step_size, cfg.gamma), "epoch"),
    "cosine-restarts": (lambda opt, cfg, n: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=cfg.t0, T_mult=cfg.t_mult), "epoch"),
    "cosine": (lambda opt, cfg, n: torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=cfg.epochs * n), "batch"),
    "onecycle": (lambda opt, cfg, n: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * n, pct_start=0.15), "batch"),
}


def build_optimizer(name, model, lr, weight_decay):
    """Build a registered optimiser by name."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](model.parameters(), lr, weight_decay)


def build_scheduler(name, optimizer, cfg, steps_per_epoch):
    """Build a registered LR scheduler by name; returns (scheduler, step unit)."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose from {', '.join(SCHEDULERS)}")
    factory, unit = SCHEDULERS[name]
    return factory(optimizer, cfg, steps_per_epoch), unit


def autocast(precision):
    """bf16 autocast on the CPU, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def mixup(x, y, alpha, num_classes):
    """Mix each image with a shuffled partner; returns mixed images and soft targets (y: labels or soft targets)."""
    lam = float(np.random.beta(alpha, alpha))
    perm = torch.randperm(x.size(0))
    target = F.one_hot(y, num_classes).float() if y.dim() == 1 else y
    return lam * x + (1 - lam) * x[perm], lam * target + (1 - lam) * target[perm]


@torch.no_grad()
def teacher_probs(teachers, x, temperature, precision):
    """The frozen teachers' softened probabilities, averaged over the teachers and over each image and its mirror."""
    with autocast(precision):
        logits = [teacher(v).float() for teacher in teachers for v in (x, x.flip(3))]
    return torch.stack([F.softmax(z / temperature, 1) for z in logits]).mean(0)


def distillation_loss(student_logits, target_probs, temperature):
    """Hinton et al. (2015): KL(teacher || student) at temperature T, scaled by T^2."""
    log_p = F.log_softmax(student_logits / temperature, 1)
    return F.kl_div(log_p, target_probs, reduction="batchmean") * temperature ** 2


def mirror_pair_logits(model, x):
    """Logits averaged over each image and its mirror, both views as one batch: the flip-TTA function."""
    z = model(torch.cat([x, x.flip(3)]))
    return (z[:len(x)] + z[len(x):]) / 2


def train_one_epoch(model, images, labels, augment, optimizer, scheduler, unit, cfg, epoch, teachers=(), ema=None):
    """One pass over the shuffled training set; returns (mean loss, accuracy).

    With teachers, the loss mixes the label loss and the distillation loss (towards the
    teachers' mean probabilities) with weight cfg.distill_alpha on the latter. With ema (a
    torch.optim.swa_utils.AveragedModel), the
    average is updated after every optimiser step. With cfg.mirror_pair, both losses see the
    student's logits averaged over each image and its mirror, the function a --flip-tta export serves.
    """
    model.train()
    order = torch.randperm(len(labels))
    total_loss, correct, seen = 0.0, 0, 0
    batches = range(0, len(order), cfg.batch_size)
    for start in tqdm(batches, desc=f"epoch {epoch}", leave=False, unit="batch"):
        idx = order[start:start + cfg.batch_size]
        x, y = augment(images[idx]), labels[idx]
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        target = y
        if cfg.mixup > 0:
            x, target = mixup(x, y, cfg.mixup, len(LABELS))
        if y.dim() == 2:  # soft targets (FER+ votes): accuracy against their most likely class
            y = y.argmax(1)
        with autocast(cfg.precision):
            logits = mirror_pair_logits(model, x) if cfg.mirror_pair else model(x)
        loss = F.cross_entropy(logits.float(), target, label_smoothing=cfg.label_smoothing)
        if teachers:
            soft = teacher_probs(teachers, x, cfg.distill_temperature, cfg.precision)
            kd = distillation_loss(logits.float(), soft, cfg.distill_temperature)
            loss = (1 - cfg.distill_alpha) * loss + cfg.distill_alpha * kd
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        if unit == "batch":
            scheduler.step()
        total_loss += loss.item() * len(idx)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(idx)
    return total_loss / seen, correct / seen


def tta_views(x, tta):
    """The views averaged at test time: the image, its mirror, and for "crops" four shifted crops."""
    views = [x]
    if tta in ("flip", "crops"):
        views.append(x.flip(3))
    if tta == "crops":
        padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
        views += [padded[..., dy:dy + FACE_SIZE, dx:dx + FACE_SIZE] for dy, dx in ((0, 0), (0, 4), (4, 0), (4, 4))]
    return views


@torch.no_grad()
def predict_logits(model, images, batch_size=512, precision="fp32", tta="none", desc="predict"):
    """Logits (N, 7) for uint8 images, averaging logits over the test-time views."""
    model.eval()
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, leave=False, unit="batch"):
        x = to_tensor(images[start:start + batch_size])
        with autocast(precision):
            logits = [model(v).float() for v in tta_views(x, tta)]
        out.append(torch.stack(logits).mean(0))
    return torch.cat(out) if out else torch.zeros(0, len(LABELS))


@torch.no_grad()
def predict_probs(module, images, tta="none", batch_size=512):
    """Probabilities from a module that outputs them (an exported model), averaged over test-time views."""
    out = []
    for start in range(0, len(images), batch_size):
        x = to_tensor(images[start:start + batch_size])
        out.append(torch.stack([module(v) for v in tta_views(x, tta)]).mean(0))
    return torch.cat(out) if out else torch.zeros(0, len(LABELS))


def rng_state():
    """Every random generator the training loop draws from."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state):
    """Restore the generators saved by rng_state."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def seed_everything(seed):
    """Seed torch, numpy and random."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
