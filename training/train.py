"""Train a FER-2013 model: data, model, optimiser, loop, checkpoints.

    python -m training.train --data ../shared/data/fer2013.csv.gz --model fernet --epochs 60

Writes RUN_DIR/last.pt every epoch, RUN_DIR/best.pt whenever validation accuracy improves,
and RUN_DIR/log.jsonl (one line per epoch). `--resume` continues from RUN_DIR/last.pt.
"""
import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from training.augment import PRESETS, build_augment
from training.data import (DEFAULT_DATA, DEFAULT_VOTES, attach_votes, ferplus_majority, has_votes,
                           load_dataset, normalisation, soft_targets, truncate)
from training.engine import (OPTIMIZERS, SCHEDULERS, Normalize, build_optimizer, build_scheduler,
                             predict_logits, rng_state, seed_everything, set_rng_state, to_tensor,
                             train_one_epoch)
from training.checkpoint import load_checkpoint, load_checkpoint_model, make_checkpoint, save_atomic
from training.models import MODELS, build_model, model_cost


@dataclass
class Config:
    data: str = DEFAULT_DATA
    votes: str = DEFAULT_VOTES
    ferplus: float = 0.0
    select: str = "fer2013"
    run_dir: str = "runs/fernet"
    model: str = "fernet"
    augment: str = "strong"
    epochs: int = 60
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    weight_decay: float = 5e-4
    scheduler: str = "onecycle"
    step_size: int = 20
    gamma: float = 0.1
    plateau_patience: int = 5
    t0: int = 2
    t_mult: int = 10
    label_smoothing: float = 0.1
    mixup: float = 0.0
    init: str = ""
    teacher: list = field(default_factory=list)
    distill_alpha: float = 0.5
    distill_temperature: float = 1.0
    ema: float = 0.0
    mirror_pair: bool = False
    patience: int = 0
    max_minutes: float = 0.0
    precision: str = "auto"
    channels_last: bool = True
    threads: int = 0
    limit: int = 0
    seed: int = 0


def parse_args(argv=None):
    """Command-line flags -> Config; every help string names the default."""
    d = Config()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=d.data, help=f"fer2013.csv[.gz] or a folder with train/ and test/ (default: {d.data})")
    p.add_argument("--votes", default=d.votes, help=f"FER+ votes for the CSV's rows, read when --ferplus or --select needs them (default: {d.votes})")
    p.add_argument("--ferplus", type=float, default=d.ferplus, help=f"weight of the FER+ vote distribution in the training target, the rest being the FER-2013 label: 0 trains on FER-2013 labels, 1 on the votes (default: {d.ferplus})")
    p.add_argument("--select", default=d.select, choices=list(SELECT), help=f"validation accuracy that picks best.pt and early stopping: FER-2013 labels, FER+ plurality, or their mean (default: {d.select})")
    p.add_argument("--run-dir", default=d.run_dir, help=f"where checkpoints and the log go (default: {d.run_dir})")
    p.add_argument("--model", default=d.model, choices=list(MODELS), help=f"architecture (default: {d.model})")
    p.add_argument("--augment", default=d.augment, choices=list(PRESETS), help=f"augmentation preset (default: {d.augment})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"maximum epochs (default: {d.epochs})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"batch size (default: {d.batch_size})")
    p.add_argument("--optimizer", default=d.optimizer, choices=list(OPTIMIZERS), help=f"adam is AdamW; sgd has Nesterov momentum 0.9 (default: {d.optimizer})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"(peak) learning rate (default: {d.lr})")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help=f"weight decay (default: {d.weight_decay})")
    p.add_argument("--scheduler", default=d.scheduler, choices=list(SCHEDULERS), help=f"LR schedule (default: {d.scheduler})")
    p.add_argument("--step-size", type=int, default=d.step_size, help=f"StepLR period in epochs (default: {d.step_size})")
    p.add_argument("--gamma", type=float, default=d.gamma, help=f"LR factor for step and plateau (default: {d.gamma})")
    p.add_argument("--plateau-patience", type=int, default=d.plateau_patience, help=f"epochs without improvement before plateau lowers the LR (default: {d.plateau_patience})")
    p.add_argument("--t0", type=int, default=d.t0, help=f"CosineAnnealingWarmRestarts T_0 in epochs (default: {d.t0})")
    p.add_argument("--t-mult", type=int, default=d.t_mult, help=f"CosineAnnealingWarmRestarts T_mult (default: {d.t_mult})")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing, help=f"cross-entropy label smoothing (default: {d.label_smoothing})")
    p.add_argument("--mixup", type=float, default=d.mixup, help=f"mixup Beta(alpha, alpha); 0 turns it off (default: {d.mixup})")
    p.add_argument("--init", default=d.init, help="start from this training checkpoint's weights (same --model) instead of random ones (default: random)")
    p.add_argument("--teacher", nargs="+", default=d.teacher, metavar="CHECKPOINT", help="distil from these training checkpoints, frozen, their probabilities averaged over the teachers and over each image and its mirror (default: no teacher)")
    p.add_argument("--distill-alpha", type=float, default=d.distill_alpha, help=f"weight of the distillation loss against the label loss (default: {d.distill_alpha})")
    p.add_argument("--distill-temperature", type=float, default=d.distill_temperature, help=f"softmax temperature of the distillation loss (default: {d.distill_temperature})")
    p.add_argument("--ema", type=float, default=d.ema, help=f"keep an exponential moving average of the weights and BatchNorm statistics with this decay per step, and validate and save it; 0 turns it off (default: {d.ema})")
    p.add_argument("--mirror-pair", action="store_true", help="train and validate the flip-TTA function: each image's logits are the mean over it and its mirror, so every step runs twice the images; export with --flip-tta (default: off)")
    p.add_argument("--patience", type=int, default=d.patience, help=f"early stopping: epochs without a better validation accuracy; 0 never stops early (default: {d.patience})")
    p.add_argument("--max-minutes", type=float, default=d.max_minutes, help=f"stop once this much training time (summed over resumed runs) is spent, for equal-budget comparisons; 0 means no limit (default: {d.max_minutes})")
    p.add_argument("--precision", default=d.precision, choices=["auto", "fp32", "bf16"], help=f"bf16 autocast on the CPU, fp32, or auto: bf16 where the CPU computes it natively (AVX-512 BF16 or AMX), else fp32 (default: {d.precision})")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false", help="keep NCHW memory layout (default: channels_last)")
    p.add_argument("--threads", type=int, default=d.threads, help=f"torch threads; 0 keeps torch's choice (default: {d.threads})")
    p.add_argument("--limit", type=int, default=d.limit, help=f"use only the first N images of each split, for smoke runs; 0 uses all (default: {d.limit})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default: {d.seed})")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt with its saved config; only a --max-minutes given with it replaces the saved budget, to extend an equal-budget run (default: off)")
    args = p.parse_args(argv)
    resume = args.resume
    del args.resume
    return Config(**vars(args)), resume


def resolve_precision(precision):
    """"auto" -> bf16 where the CPU has native bf16 (emulated bf16 on AVX2 is about 10x slower than fp32), else fp32."""
    if precision != "auto":
        return precision
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bf16" if native else "fp32"


def sets_budget(argv):
    """Whether the command line gives --max-minutes (with --resume it replaces the saved budget)."""
    return any(a.startswith("--max-minutes") for a in (sys.argv[1:] if argv is None else argv))


# How a validation epoch is scored for best.pt and early stopping, from (FER-2013 accuracy, FER+ accuracy).
SELECT = {
    "fer2013": lambda fer, plus: fer,
    "ferplus": lambda fer, plus: plus,
    "mean": lambda fer, plus: (fer + plus) / 2,
}


def load_training_data(cfg):
    """The dataset (truncated for smoke runs), with FER+ votes attached when the config uses them."""
    dataset = truncate(load_dataset(cfg.data, seed=cfg.seed), cfg.limit)
    if cfg.ferplus or cfg.select != "fer2013":
        dataset = attach_votes(dataset, cfg.votes)
    return dataset


def validation_scores(logits, val):
    """FER-2013 accuracy, and FER+ plurality accuracy on the voted faces (None without votes)."""
    predicted = logits.argmax(1).numpy()
    fer = (predicted == val.labels).mean().item()
    if val.votes is None:
        return fer, None
    voted = has_votes(val)
    return fer, (predicted[voted] == ferplus_majority(val.votes[voted])).mean().item()


def build_training_model(cfg, mean, std):
    """The network behind a Normalize layer, so normalisation travels with the weights."""
    model = nn.Sequential(Normalize(mean, std), build_model(cfg.model))
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def write_log(history, run_dir):
    """Rewrite log.jsonl from the history, so a resumed run never duplicates lines."""
    lines = "".join(json.dumps(row) + "\n" for row in history)
    tmp = Path(run_dir) / "log.jsonl.tmp"
    tmp.write_text(lines)
    tmp.replace(Path(run_dir) / "log.jsonl")


def starting_config(cfg, resume, argv):
    """(config, command that made the run, checkpoint to resume from or None): a resumed run keeps
    its saved config and command, with only --max-minutes taken from this command line."""
    if not resume:
        command = "python -m training.train " + " ".join(argv if argv is not None else sys.argv[1:])
        return replace(cfg, precision=resolve_precision(cfg.precision)), command, None
    last_path = Path(cfg.run_dir) / "last.pt"
    if not last_path.exists():
        sys.exit(f"--resume: no checkpoint at {last_path}")
    checkpoint = load_checkpoint(last_path)
    saved = Config(**checkpoint["config"])
    if sets_budget(argv):
        saved = replace(saved, max_minutes=cfg.max_minutes)
    return saved, checkpoint["command"], checkpoint


def load_teachers(cfg):
    """The frozen teachers to distil from (none without --teacher)."""
    teachers = [load_checkpoint_model(path)[0].requires_grad_(False) for path in cfg.teacher]
    if cfg.channels_last:
        teachers = [teacher.to(memory_format=torch.channels_last) for teacher in teachers]
    if teachers:
        print(f"distilling from {', '.join(cfg.teacher)} (alpha {cfg.distill_alpha}, temperature {cfg.distill_temperature})")
    return teachers


def restore(checkpoint, model, ema, optimizer, scheduler):
    """Put a resumed run's state back; returns (first epoch to run, best score, stale epochs, history)."""
    model.load_state_dict(checkpoint.get("train_model", checkpoint["model"]))
    if ema is not None:
        ema.load_state_dict(checkpoint["ema"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    set_rng_state(checkpoint["rng"])
    print(f"resumed at epoch {checkpoint['epoch'] + 1} (best val acc {checkpoint['best_val_acc']:.4f})")
    return checkpoint["epoch"] + 1, checkpoint["best_val_acc"], checkpoint["stale"], checkpoint["history"]


def stop_reason(cfg, stale, history):
    """Why training stops before the next epoch (early stopping, time budget), or None."""
    if cfg.patience and stale >= cfg.patience:
        return f"early stop: no better validation accuracy for {stale} epochs"
    spent = sum(row["seconds"] for row in history) / 60
    if cfg.max_minutes and spent >= cfg.max_minutes:
        return f"time budget spent: {spent:.1f} of {cfg.max_minutes:g} minutes"
    return None


def main(argv=None):
    cfg, resume = parse_args(argv)
    run_dir = Path(cfg.run_dir)  # this command line's, also when resuming a run that was moved
    cfg, command, resumed = starting_config(cfg, resume, argv)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)

    # Data: uint8 arrays in memory; normalisation from the training split only.
    dataset = load_training_data(cfg)
    mean, std = normalisation(dataset["train"])
    train, val = dataset["train"], dataset["val"]
    train_x = to_tensor(train.images)
    # FER-2013 labels as class indices (bit for bit the earlier recipes), or soft targets with FER+ votes.
    train_y = torch.from_numpy(soft_targets(train, cfg.ferplus) if cfg.ferplus else train.labels)
    print(f"data: {len(train_y)} train, {len(val)} val; mean {mean:.4f} std {std:.4f}"
          + (f"; targets {cfg.ferplus:g} FER+ votes, {1 - cfg.ferplus:g} FER-2013 label" if cfg.ferplus else ""))

    # Model, augmentation, optimiser, schedule.
    model = build_training_model(cfg, mean, std)
    if cfg.init and not resume:
        model.load_state_dict(load_checkpoint(cfg.init)["model"])
        print(f"initial weights from {cfg.init}")
    teachers = load_teachers(cfg)
    cost = model_cost(build_model(cfg.model))
    print(f"model {cfg.model}: {cost.params:,} parameters, {cost.macs / 1e6:.1f} M multiply-accumulates per image")
    augment = build_augment(cfg.augment)
    optimizer = build_optimizer(cfg.optimizer, model, cfg.lr, cfg.weight_decay)
    steps_per_epoch = -(-len(train_y) // cfg.batch_size)
    scheduler, unit = build_scheduler(cfg.scheduler, optimizer, cfg, steps_per_epoch)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True) if cfg.ema else None
    evaluated = ema.module if ema is not None else model
    start_epoch, best_acc, stale, history = (restore(resumed, model, ema, optimizer, scheduler) if resumed
                                             else (1, 0.0, 0, []))

    # The loop: train, validate, step the schedule, checkpoint (last.pt always, best.pt when better).
    for epoch in range(start_epoch, cfg.epochs + 1):
        reason = stop_reason(cfg, stale, history)
        if reason:
            print(reason)
            break
        t0 = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = train_one_epoch(model, train_x, train_y, augment, optimizer, scheduler, unit, cfg, epoch,
                                                teachers=teachers, ema=ema)
        logits = predict_logits(evaluated, val.images, precision=cfg.precision, desc="val",
                                tta="flip" if cfg.mirror_pair else "none")
        val_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(val.labels)).item()
        val_acc, val_ferplus = validation_scores(logits, val)
        score = SELECT[cfg.select](val_acc, val_ferplus)
        if unit == "epoch":
            scheduler.step()
        elif unit == "plateau":
            scheduler.step(score)
        improved = score > best_acc
        best_acc, stale = (score, 0) if improved else (best_acc, stale + 1)
        history.append({"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
                        "val_loss": val_loss, "val_acc": val_acc, "seconds": time.perf_counter() - t0})
        if val_ferplus is not None:
            history[-1]["val_ferplus_acc"] = val_ferplus
        print(f"epoch {epoch}: train loss {train_loss:.4f} acc {train_acc:.4f} | val loss {val_loss:.4f} "
              f"acc {val_acc:.4f}" + (f" FER+ {val_ferplus:.4f}" if val_ferplus is not None else "")
              + f"{' *' if improved else ''} | lr {lr:.2e} | {history[-1]['seconds']:.0f}s", flush=True)

        checkpoint = make_checkpoint(evaluated.state_dict(), asdict(cfg), mean, std, cost, command,
                                     epoch=epoch, best_val_acc=best_acc, history=history,
                                     optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                                     rng=rng_state(), stale=stale)
        if ema is not None:  # the weights being trained, to resume from; "model" holds the average
            checkpoint.update(train_model=model.state_dict(), ema=ema.state_dict())
        if improved:
            save_atomic(checkpoint, run_dir / "best.pt")
        save_atomic(checkpoint, run_dir / "last.pt")
        write_log(history, run_dir)
    print(f"best val {cfg.select} score {best_acc:.4f}; checkpoint {run_dir / 'best.pt'}")


if __name__ == "__main__":
    main()
