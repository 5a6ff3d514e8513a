"""The training pipeline end to end on a small synthetic CSV: no ../shared needed."""
import copy
import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import modelfile
from training import augment, data, models, train
from training.checkpoint import load_checkpoint_model
from training.data import LABELS, DataError

USAGES = ["Training"] * 6 + ["PublicTest"] * 2 + ["PrivateTest"] * 2


def face(label, rng):
    """A 48x48 image whose class shows as a bright bar at a class-specific height, plus noise."""
    image = rng.integers(0, 80, (48, 48))
    image[label * 6:label * 6 + 6, 8:40] += 150
    return image


def write_csv(path, rows_per_class=30, seed=0, gz=False):
    rng = np.random.default_rng(seed)
    lines = ["emotion,pixels,Usage"]
    for i in range(rows_per_class * len(LABELS)):
        label = i % len(LABELS)
        pixels = " ".join(map(str, face(label, rng).ravel()))
        lines.append(f"{label},{pixels},{USAGES[(i // len(LABELS)) % len(USAGES)]}")
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("data") / "fer2013.csv")


def test_loads_splits_from_the_csv(csv_path, tmp_path):
    dataset = data.load_csv(csv_path, cache_dir=tmp_path)
    assert {k: len(v) for k, v in dataset.items()} == {"train": 126, "val": 42, "test": 42}
    assert dataset["train"].images.dtype == np.uint8 and dataset["train"].images.shape[1:] == (48, 48)


def test_gzipped_csv_loads_the_same(tmp_path):
    plain = data.load_csv(write_csv(tmp_path / "a.csv"), cache_dir=tmp_path / "c1")
    zipped = data.load_csv(write_csv(tmp_path / "a.csv.gz", gz=True), cache_dir=tmp_path / "c2")
    assert np.array_equal(plain["val"].images, zipped["val"].images)


def test_second_load_comes_from_the_cache(csv_path, tmp_path, monkeypatch):
    first = data.load_csv(csv_path, cache_dir=tmp_path)
    monkeypatch.setattr(data, "parse_csv", lambda path: pytest.fail("parsed again instead of using the cache"))
    second = data.load_csv(csv_path, cache_dir=tmp_path)
    assert np.array_equal(first["train"].images, second["train"].images)


def test_cache_is_invalidated_when_the_file_changes(tmp_path):
    path = write_csv(tmp_path / "x.csv", rows_per_class=10)
    data.load_csv(path, cache_dir=tmp_path / "cache")
    write_csv(path, rows_per_class=20)
    assert len(data.load_csv(path, cache_dir=tmp_path / "cache")["train"]) == 84


GOOD = " ".join(["0"] * 2304)


@pytest.mark.parametrize("row,message", [
    (f"0,{' '.join(['0'] * 2303)},Training", "line 3: expected 2304 pixel values, got 2303"),
    (f"7,{GOOD},Training", "line 3: emotion '7'"),
    (f"-1,{GOOD},Training", "line 3: emotion '-1'"),
    (f"0,{GOOD},Validation", "line 3: unknown Usage 'Validation'"),
    (f"0,{' '.join(['300'] * 2304)},Training", "line 3: pixel values must lie in 0..255"),
    (f"0,{' '.join(['x'] * 2304)},Training", "line 3: pixels contain a value that is not an integer"),
    ("0,Training", "line 3: expected 3 columns"),
])
def test_malformed_row_is_an_error_naming_the_line(tmp_path, row, message):
    path = tmp_path / "bad.csv"
    path.write_text(f"emotion,pixels,Usage\n0,{GOOD},Training\n{row}\n")
    with pytest.raises(DataError, match=message):
        data.parse_csv(path)


def test_wrong_header_is_an_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(f"label,pixels,Usage\n0,{GOOD},Training\n")
    with pytest.raises(DataError, match="line 1: expected header"):
        data.parse_csv(path)


def test_image_folder_release_with_stratified_validation(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 10), ("test", 3)):
        for label_index, label in enumerate(LABELS):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(face(label_index, rng).astype(np.uint8)).save(folder / f"{i}.jpg")
    dataset = data.load_folders(tmp_path, val_fraction=0.2, seed=1)
    assert np.bincount(dataset["val"].labels).tolist() == [2] * 7
    assert np.bincount(dataset["train"].labels).tolist() == [8] * 7
    assert len(dataset["test"]) == 21
    again = data.load_folders(tmp_path, val_fraction=0.2, seed=1)
    assert np.array_equal(dataset["val"].images, again["val"].images)


@pytest.mark.parametrize("name", [p for p in augment.PRESETS if p != "none"])
def test_augmentation_keeps_shape_and_range_and_changes_the_batch(name):
    torch.manual_seed(0)
    x = torch.rand(16, 1, 48, 48)
    y = augment.build_augment(name)(x)
    assert y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1
    assert not torch.equal(x, y)


@pytest.mark.parametrize("name", list(models.MODELS))
def test_every_model_builds_and_runs_at_48x48(name):
    model = models.build_model(name).eval()
    assert model(torch.rand(2, 1, 48, 48)).shape == (2, 7)
    cost = models.model_cost(model)
    assert cost.params > 10_000 and cost.macs > 1_000_000


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        models.build_model("nope")
    with pytest.raises(ValueError, match="unknown augmentation 'nope'"):
        augment.build_augment("nope")


def run_args(csv_path, run_dir, epochs=3):
    return ["--data", str(csv_path), "--run-dir", str(run_dir), "--epochs", str(epochs), "--batch-size", "32",
            "--model", "fernet", "--lr", "0.05", "--scheduler", "onecycle", "--mixup", "0.2", "--threads", "2"]


@pytest.mark.parametrize("extra", [[], ["--ema", "0.9"]], ids=["plain", "ema"])
def test_resume_continues_exactly_where_the_run_stopped(csv_path, tmp_path, monkeypatch, extra):
    train.main(run_args(csv_path, tmp_path / "straight") + extra)

    calls = []

    def crash_after_two_epochs(history, run_dir):
        train_log(history, run_dir)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("session ended")

    train_log = train.write_log
    monkeypatch.setattr(train, "write_log", crash_after_two_epochs)
    with pytest.raises(KeyboardInterrupt):
        train.main(run_args(csv_path, tmp_path / "interrupted") + extra)
    monkeypatch.setattr(train, "write_log", train_log)
    train.main(["--run-dir", str(tmp_path / "interrupted"), "--resume"])

    straight = torch.load(tmp_path / "straight" / "last.pt", weights_only=False)
    resumed = torch.load(tmp_path / "interrupted" / "last.pt", weights_only=False)
    assert resumed["epoch"] == straight["epoch"] == 3
    for part in ("model", "train_model") if extra else ("model",):
        for key, value in straight[part].items():
            assert torch.equal(value, resumed[part][key]), (part, key)
    if extra:  # the saved (validated) weights are the average, not the weights being trained
        assert any(not torch.equal(v, straight["train_model"][k]) for k, v in straight["model"].items())
    log = [json.loads(line) for line in (tmp_path / "interrupted" / "log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2, 3]
    assert set(log[0]) >= {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}


@pytest.fixture(scope="module")
def trained_run(csv_path, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    # A learnable task: light augmentation and no mixup, so the net the later tests export,
    # quantise, recover and shrink has really learnt the classes.
    train.main(run_args(csv_path, run_dir, epochs=6) + ["--augment", "flip", "--mixup", "0", "--patience", "3"])
    return run_dir


def test_training_learns_the_synthetic_classes(trained_run):
    log = [json.loads(line) for line in (trained_run / "log.jsonl").read_text().splitlines()]
    assert max(row["val_acc"] for row in log) >= 0.9  # chance is 1/7
    assert log[-1]["train_loss"] < 0.6 * log[0]["train_loss"]


def test_evaluate_writes_metrics_and_plots(trained_run, csv_path):
    from training import evaluate
    out = trained_run / "eval"
    evaluate.main(["--model", str(trained_run / "best.pt"), "--data", str(csv_path), "--split", "val",
                   "--tta", "crops", "--log", str(trained_run / "log.jsonl"), "--out-dir", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["per_class"]) == set(LABELS)
    confusion = np.array(metrics["confusion"])
    assert metrics["n"] == confusion.sum() == 42 and metrics["accuracy"] == pytest.approx(np.trace(confusion) / 42)
    for png in ("confusion.png", "pr_curves.png", "reliability.png", "curves.png"):
        assert (out / png).stat().st_size > 1000


# Exports compared with their checkpoint keep temperature 1 (--no-calibrate): on this separable
# task the fitted temperature is 0.05, which saturates the softmax and would hide any error.

def test_export_honours_the_contract_without_the_training_code(trained_run, csv_path, tmp_path):
    # The export runs as a command, in a process of its own, as users run it.
    out = tmp_path / "fer.pt"
    done = subprocess.run([sys.executable, "-m", "training.export", "--checkpoint", str(trained_run / "best.pt"),
                           "--data", str(csv_path), "--out", str(out), "--test", "--no-calibrate"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    extra = {"meta.json": ""}
    module = torch.jit.load(str(out), _extra_files=extra)
    meta = json.loads(extra["meta.json"])
    assert meta["labels"] == list(LABELS)
    assert meta["params"] > 0 and meta["command"].startswith("python -m training.train")
    assert meta["val_accuracy"] >= 0.9 and meta["test_accuracy"] >= 0.9 and meta["temperature"] == 1

    x = torch.rand(5, 1, 48, 48)
    probs = module(x)
    assert probs.shape == (5, 7) and probs.dtype == torch.float32
    assert torch.allclose(probs.sum(1), torch.ones(5), atol=1e-4)

    # Normalisation lives inside the file: it must match the checkpoint's net fed normalised input.
    net, checkpoint = load_checkpoint_model(trained_run / "best.pt")
    with torch.no_grad():
        expected = (net(x) / meta["temperature"]).softmax(1)
    assert torch.allclose(probs, expected, rtol=0, atol=0.006)  # bf16: measured 0.0023, at most 0.0037 in 300 draws of x
    with pytest.raises(torch.jit.Error, match="expected a float tensor of shape"):
        module(torch.rand(2, 3, 48, 48))


def test_time_budget_stops_training(csv_path, tmp_path):
    train.main(run_args(csv_path, tmp_path, epochs=5) + ["--max-minutes", "0.00001"])
    log = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(log) == 1


def test_resume_with_a_new_budget_extends_the_run(csv_path, tmp_path):
    train.main(run_args(csv_path, tmp_path, epochs=3) + ["--max-minutes", "0.00001"])
    train.main(["--run-dir", str(tmp_path), "--resume"])  # the saved budget is spent: nothing more
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 1
    train.main(["--run-dir", str(tmp_path), "--resume", "--max-minutes", "0"])  # 0: no limit
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 3
    assert torch.load(tmp_path / "last.pt", weights_only=False)["config"]["max_minutes"] == 0


def test_distillation_loss_is_zero_only_when_the_student_matches_the_teacher():
    from training.engine import distillation_loss
    logits = torch.randn(6, 7)
    for temperature in (1.0, 2.0):
        same = torch.softmax(logits / temperature, 1)
        assert distillation_loss(logits, same, temperature).item() == pytest.approx(0, abs=1e-6)
        other = torch.softmax(torch.randn(6, 7), 1)
        assert distillation_loss(logits, other, temperature).item() > 0.01


def test_teacher_targets_average_the_image_and_its_mirror():
    from training.engine import teacher_probs
    torch.manual_seed(0)
    teacher = models.build_model("fernet").eval()
    x = torch.rand(4, 1, 48, 48)
    p = teacher_probs([teacher], x, 1.0, "fp32")
    assert torch.allclose(p.sum(1), torch.ones(4), atol=1e-5)
    assert torch.allclose(p, teacher_probs([teacher], x.flip(3), 1.0, "fp32"), atol=1e-5)
    with torch.no_grad():
        expected = (teacher(x).softmax(1) + teacher(x.flip(3)).softmax(1)) / 2
    assert torch.allclose(p, expected, atol=1e-5)


def test_several_teachers_give_the_mean_of_their_targets():
    from training.engine import teacher_probs
    torch.manual_seed(0)
    first, second = models.build_model("fernet").eval(), models.build_model("fernet-022").eval()
    x = torch.rand(4, 1, 48, 48)
    for temperature in (1.0, 3.0):
        both = teacher_probs([first, second], x, temperature, "fp32")
        alone = [teacher_probs([t], x, temperature, "fp32") for t in (first, second)]
        assert torch.allclose(both, (alone[0] + alone[1]) / 2, atol=1e-6)
        assert not torch.allclose(alone[0], alone[1], atol=1e-3)


def test_second_stage_starts_from_the_checkpoint_and_distils_from_a_frozen_teacher(trained_run, csv_path, tmp_path, monkeypatch):
    best = torch.load(trained_run / "best.pt", weights_only=False)
    seen = {}
    real = train.train_one_epoch

    def spy(model, *args, teachers=(), ema=None):
        if not seen:
            seen["weights"] = {k: v.clone() for k, v in model.state_dict().items()}
            seen["teachers"] = teachers
        return real(model, *args, teachers=teachers, ema=ema)

    monkeypatch.setattr(train, "train_one_epoch", spy)
    stage2 = run_args(csv_path, tmp_path, epochs=1) + ["--init", str(trained_run / "best.pt"),
                                                       "--teacher", str(trained_run / "best.pt")]
    train.main(stage2)
    for key, value in best["model"].items():
        assert torch.equal(seen["weights"][key], value), key
    [teacher] = seen["teachers"]
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    assert torch.load(tmp_path / "last.pt", weights_only=False)["config"]["teacher"] == [str(trained_run / "best.pt")]


@pytest.mark.parametrize("flip", [False, True], ids=["plain", "flip-tta"])
def test_recovered_checkpoint_computes_the_exported_function_in_both_batchnorm_modes(trained_run, csv_path, tmp_path, flip):
    from training import export, recover
    exported = tmp_path / "fer.pt"
    export.main(["--checkpoint", str(trained_run / "best.pt"), "--data", str(csv_path), "--out", str(exported),
                 "--dtype", "fp32", "--no-calibrate"] + (["--flip-tta"] if flip else []))
    recover.main(["--exported", str(exported), "--data", str(csv_path), "--out", str(tmp_path / "rec.pt")])
    model, checkpoint = load_checkpoint_model(tmp_path / "rec.pt")
    original = torch.load(trained_run / "best.pt", weights_only=False)
    assert checkpoint["config"] == original["config"] and checkpoint["mean"] == original["mean"]

    extra = {"meta.json": ""}
    module = torch.jit.load(str(exported), _extra_files=extra)
    temperature = json.loads(extra["meta.json"])["temperature"]
    x = torch.rand(6, 1, 48, 48)
    with torch.no_grad():
        logits = model(x) if not flip else (model(x) + model(x.flip(3))) / 2
        assert torch.allclose((logits / temperature).softmax(1), module(x), atol=1e-4)

    # In training mode BatchNorm uses the batch's statistics; on the images the statistics came
    # from, the re-expanded BatchNorm must give what the folded convs give.
    meta, layers = recover.read_exported(exported)
    normalised = model[0](x)
    net = recover.recover_net("fernet", layers, normalised)
    with torch.no_grad():
        expected = net(normalised)
        for m in net.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        assert torch.allclose(net.train()(normalised), expected, atol=1e-4)


def test_recovery_refuses_a_file_of_another_architecture(trained_run, csv_path, tmp_path):
    from training import export, recover
    exported = tmp_path / "fer.pt"
    export.main(["--checkpoint", str(trained_run / "best.pt"), "--data", str(csv_path), "--out", str(exported)])
    meta, layers = recover.read_exported(exported)
    with pytest.raises(ValueError, match="has 15 conv/linear layers; fernet4 has"):
        recover.recover_net("fernet4", layers, torch.rand(4, 1, 48, 48))


def test_int8_export_runs_quantised_kernels_and_agrees_with_the_checkpoint(trained_run, csv_path, tmp_path):
    from training import export, recover
    out = tmp_path / "int8.pt"
    export.main(["--checkpoint", str(trained_run / "best.pt"), "--data", str(csv_path), "--out", str(out),
                 "--dtype", "int8", "--calibration-images", "100", "--no-calibrate"])
    module, meta = modelfile.load(out)
    assert meta["dtype"] == "int8" and meta["quantisation"]["calibration_images"] == 100
    assert meta["quantisation"]["engine"] == "onednn"
    assert "quantized::conv2d_add_relu" in str(module.graph)  # residual adds run inside the convs

    dataset = data.load_dataset(csv_path)
    x = torch.from_numpy(dataset["val"].images).unsqueeze(1).float() / 255
    probs = module(x)
    assert probs.shape == (len(x), 7) and probs.dtype == torch.float32
    assert torch.allclose(probs.sum(1), torch.ones(len(x)), atol=1e-4)
    net, _ = load_checkpoint_model(trained_run / "best.pt")
    with torch.no_grad():
        expected = (net(x) / meta["temperature"]).softmax(1)
    assert (probs - expected).abs().max() < 0.06  # measured 0.019
    assert (probs.argmax(1) == expected.argmax(1)).float().mean() >= 0.95  # measured: all 42 agree

    # Recovered from the int8 file (its weights dequantised, activations float again), the
    # training net computes what the file computes, up to the file's activation rounding.
    recover.main(["--exported", str(out), "--data", str(csv_path), "--out", str(tmp_path / "rec.pt")])
    recovered, _ = load_checkpoint_model(tmp_path / "rec.pt")
    with torch.no_grad():
        again = (recovered(x) / meta["temperature"]).softmax(1)
    assert (again - probs).abs().max() < 0.03  # measured 0.014 (0.0003 with the fitted temperature's saturated softmax)

    # The app loads it like any other file, with oneDNN graph fusion on or off.
    from recognition.classifier import load_classifier
    for fusion in (False, True):
        served = load_classifier(out, fusion=fusion).module
        assert torch.allclose(served(x[:5]), probs[:5], atol=1e-5)

    # A fresh process, whose quantised engine is the default one, loads it through the app's
    # loader, which selects the engine the file names.
    script = ("import sys, numpy as np; from recognition.classifier import classify, load_classifier; "
              "c = load_classifier(sys.argv[1]); print(classify(c, np.zeros((2, 48, 48), np.uint8)).shape)")
    done = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("(2, 7)")


def test_int8_input_quantisation_is_exact_for_pixel_values():
    from training.quantise import QuantizeInput
    pixels = torch.arange(256, dtype=torch.float32).reshape(1, 1, 16, 16) / 255
    q = QuantizeInput(0.5136)(pixels)
    assert q.q_zero_point() == 131 and q.q_scale() == pytest.approx(1 / 255)
    assert torch.equal(q.int_repr().flatten(), torch.arange(256, dtype=torch.uint8))


def test_fold_normalisation_moves_the_std_into_the_first_conv():
    from training.quantise import fold_normalisation
    torch.manual_seed(0)
    net = models.build_model("fernet").eval()
    x = torch.rand(4, 1, 48, 48)
    mean, std = 0.51, 0.31
    with torch.no_grad():
        assert torch.allclose(fold_normalisation(net, std)(x - mean), net((x - mean) / std), atol=1e-4)
    with pytest.raises(ValueError, match="starts with Flatten"):
        fold_normalisation(nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 7)), std)


def test_compact_checkpoint_is_a_small_start_and_teacher_computing_the_same_function(trained_run, csv_path, tmp_path):
    from training import checkpoint
    compact = tmp_path / "compact.pt"
    checkpoint.main(["--compact", str(trained_run / "best.pt"), "--out", str(compact)])
    saved = checkpoint.load_checkpoint(compact)
    assert not set(checkpoint.RUN_STATE) & set(saved)
    assert saved["command"] == checkpoint.load_checkpoint(trained_run / "best.pt")["command"]
    assert compact.stat().st_size < 0.55 * (trained_run / "best.pt").stat().st_size
    (small, _), (full, _) = load_checkpoint_model(compact), load_checkpoint_model(trained_run / "best.pt")
    x = torch.rand(8, 1, 48, 48)
    with torch.no_grad():
        assert next(small.parameters()).dtype == torch.float32
        assert (small(x).softmax(1) - full(x).softmax(1)).abs().max() < 1e-3  # float16 rounding: 1.4e-5 on stage 1
    train.main(run_args(csv_path, tmp_path / "next", epochs=1) + ["--init", str(compact), "--teacher", str(compact)])
    assert (tmp_path / "next" / "best.pt").exists()


def shrink_checkpoint(trained_run, out, flags, model):
    """Run training.shrink on the trained fernet; (shrunk net, its checkpoint, full net, full checkpoint)."""
    from training import shrink
    shrink.main(["--checkpoint", str(trained_run / "best.pt"), *flags, "--model", model, "--out", str(out)])
    return (*load_checkpoint_model(out), *load_checkpoint_model(trained_run / "best.pt"))


def test_shrink_drops_a_residual_block_and_the_rest_computes_as_before(trained_run, tmp_path):
    small, checkpoint, full, _ = shrink_checkpoint(trained_run, tmp_path / "shrunk.pt", ["--drop-block", "0"], "fernet-022")
    assert checkpoint["config"]["model"] == "fernet-022" and checkpoint["macs"] < 0.8 * 51_352_448
    full[1][2][0] = nn.Identity()  # the same net with stage 1's block skipped
    x = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(small(x), full(x), atol=1e-5)
    with pytest.raises(SystemExit, match="do not form fernet-112"):  # block 0 gone leaves (0, 2, 2)
        shrink_checkpoint(trained_run, tmp_path / "bad.pt", ["--drop-block", "0"], "fernet-112")


def test_shrink_slims_a_block_to_its_strongest_half_and_computes_the_rest_exactly(trained_run, tmp_path):
    from training import shrink
    slim, checkpoint, full, full_checkpoint = shrink_checkpoint(trained_run, tmp_path / "slim.pt",
                                                                ["--slim-block", "0"], "fernet-s0")
    assert checkpoint["config"]["model"] == "fernet-s0" and checkpoint["macs"] < 0.92 * 51_352_448
    dropped = shrink.channel_scores(full_checkpoint["model"], "1.2.0.").argsort()[:16]
    with torch.no_grad():
        full[1][2][0].body[1].weight[:, dropped] = 0  # the full net without the weakest half of block 0's middle channels
        x = torch.rand(3, 1, 48, 48)
        assert torch.allclose(slim(x), full(x), atol=1e-5)
    with pytest.raises(SystemExit, match="do not form fernet-s02"):
        shrink_checkpoint(trained_run, tmp_path / "bad.pt", ["--slim-block", "0"], "fernet-s02")


def test_channel_scores_match_a_sampled_estimate():
    from training import shrink
    gamma, beta = torch.tensor([1.0, 0.2, 0.5, 2.0]), torch.tensor([0.0, 1.0, -1.0, -3.0])
    second = torch.rand(8, 4, 3, 3)
    state = {"1.2.0.body.0.1.weight": gamma, "1.2.0.body.0.1.bias": beta, "1.2.0.body.1.weight": second}
    y = beta + gamma * torch.randn(200_000, 4, generator=torch.Generator().manual_seed(0))
    sampled = y.relu().square().mean(0).sqrt() * second.flatten(2).norm(dim=(0, 2))
    assert torch.allclose(shrink.channel_scores(state, "1.2.0."), sampled, rtol=0.02)


def test_ensemble_script_scores_each_checkpoint_and_their_averages(trained_run, csv_path):
    best = str(trained_run / "best.pt")
    last = str(trained_run / "last.pt")
    out = subprocess.run([sys.executable, "-m", "scripts.ensemble", best, last, "--data", str(csv_path)],
                         cwd=Path(__file__).resolve().parent.parent, check=True, capture_output=True, text=True).stdout
    scores = {line.split("  ", 1)[1]: float(line.split("%")[0]) for line in out.splitlines() if "%  " in line}
    assert set(scores) == {best, last, f"{best} + {last}"}
    assert all(90 <= s <= 100 for s in scores.values())  # both have learnt the task


def test_profile_script_shows_the_shipped_files_quantised_convs():
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-m", "scripts.profile_model", "model/fer.onednn.pt", "--batch", "4", "--repeats", "2"],
                         cwd=root, check=True, capture_output=True, text=True).stdout
    assert "batch 4" in out and "quantized::conv2d" in out and "[8, 1, 48, 48]" in out  # both flip views in one batch


def test_mirror_pair_logits_are_the_flip_tta_function():
    from training.engine import mirror_pair_logits
    from training.models import build_model
    net = build_model("fernet").eval()
    x = torch.rand(5, 1, 48, 48)
    with torch.no_grad():
        assert torch.allclose(mirror_pair_logits(net, x), (net(x) + net(x.flip(3))) / 2, atol=1e-5)


def test_mirror_pair_training_validates_the_flip_tta_function(csv_path, tmp_path):
    from training.data import load_dataset
    from training.engine import predict_logits
    train.main(run_args(csv_path, tmp_path, epochs=2) + ["--mirror-pair"])
    model, checkpoint = load_checkpoint_model(tmp_path / "last.pt")
    assert checkpoint["config"]["mirror_pair"] is True
    val = load_dataset(str(csv_path))["val"]
    logits = predict_logits(model, val.images, precision=checkpoint["config"]["precision"], tta="flip")
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log[-1]["val_acc"] == (logits.argmax(1).numpy() == val.labels).mean().item()
    loss = lambda z: torch.nn.functional.cross_entropy(z, torch.from_numpy(val.labels)).item()  # noqa: E731
    assert log[-1]["val_loss"] == pytest.approx(loss(logits), rel=1e-5)
    assert log[-1]["val_loss"] != pytest.approx(loss(predict_logits(model, val.images, precision=checkpoint["config"]["precision"])), rel=1e-5)



def test_a_mirror_pair_step_descends_the_loss_of_the_averaged_logits():
    from types import SimpleNamespace

    from training.engine import mirror_pair_logits, train_one_epoch
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(48 * 48, 7))  # no dropout or BatchNorm: one step is exact
    images, labels = torch.rand(8, 1, 48, 48), torch.arange(8) % 7
    cfg = SimpleNamespace(batch_size=8, channels_last=False, mixup=0, precision="fp32", mirror_pair=True,
                          label_smoothing=0.0)

    def stepped(logits_of):
        """A copy of net after one SGD step on the loss of logits_of(copy, images)."""
        model = copy.deepcopy(net)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        nn.functional.cross_entropy(logits_of(model, images), labels).backward()
        optimizer.step()
        return model

    trained = copy.deepcopy(net)
    loss, _ = train_one_epoch(trained, images, labels, lambda x: x, torch.optim.SGD(trained.parameters(), lr=0.5),
                              None, "epoch", cfg, 1)
    with torch.no_grad():
        assert loss == pytest.approx(nn.functional.cross_entropy(mirror_pair_logits(net, images), labels).item(), rel=1e-6)
    averaged, plain = stepped(mirror_pair_logits), stepped(lambda model, x: model(x))
    for got, want, other in zip(trained.parameters(), averaged.parameters(), plain.parameters()):
        assert torch.allclose(got, want, rtol=0, atol=1e-6)
        assert not torch.allclose(got, other, rtol=0, atol=1e-4)


def test_fitted_temperature_is_the_one_the_labels_were_drawn_with():
    from training.export import fit_temperature
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(20_000, 7, generator=generator)
    labels = torch.multinomial((logits / 2.0).softmax(1), 1, generator=generator).squeeze(1)
    # Measured over seeds 0-4: within 1.0% of 2 (0.6% for seed 0); the sampling noise of 20,000 labels.
    assert fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.03)


FERPLUS_HEADER = "ferplus_image,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"


def write_votes(path, rows):
    """A FER+ votes file: one line per data row of the CSV, each a list of 10 counts or None (no votes)."""
    lines = [FERPLUS_HEADER] + [f"fer{i:07d}.png," + ("," * 9 if v is None else ",".join(map(str, v)))
                                for i, v in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_votes_are_read_in_our_label_order_without_contempt_unknown_and_not_a_face(tmp_path):
    path = write_votes(tmp_path / "votes.csv", [
        [0, 9, 0, 0, 0, 0, 0, 0, 1, 0],   # happiness -> happy
        [1, 0, 2, 3, 4, 5, 6, 7, 8, 9],   # every column
        None,                              # FER+ dropped the face
    ])
    votes = data.read_votes(path)
    assert votes.tolist() == [
        [0, 0, 0, 9, 0, 0, 0],
        [4, 5, 6, 0, 3, 2, 1],  # angry disgust fear happy sad surprise neutral
        [0, 0, 0, 0, 0, 0, 0],
    ]


def test_votes_follow_the_csv_rows_into_every_split(csv_path, tmp_path):
    # Row r of the votes file votes only for emotion r % 7 (FER+ column order), so each face's
    # attached votes name its own CSV row.
    n = 30 * len(LABELS)
    rows = []
    for r in range(n):
        counts = [0] * 10
        counts[r % 7], counts[9] = 1 + r // 7, 1
        rows.append(counts)
    dataset = data.attach_votes(data.load_csv(csv_path, cache_dir=tmp_path), write_votes(tmp_path / "v.csv", rows))
    for split in dataset.values():
        ferplus_column = split.rows % 7
        ours = [LABELS.index(data.FERPLUS_TO_OURS[data.FERPLUS_EMOTIONS[c]]) for c in ferplus_column]
        assert data.ferplus_majority(split.votes).tolist() == ours
        assert split.votes.sum(1).tolist() == (1 + split.rows // 7).tolist()
    assert sorted(np.concatenate([s.rows for s in dataset.values()]).tolist()) == list(range(n))


def test_votes_file_shorter_than_the_csv_is_an_error(csv_path, tmp_path):
    with pytest.raises(DataError, match="vote rows"):
        data.attach_votes(data.load_csv(csv_path, cache_dir=tmp_path), write_votes(tmp_path / "v.csv", [None] * 5))


def test_ferplus_plurality_breaks_ties_by_the_ferplus_column_order():
    v = np.zeros((3, 7), np.float32)
    i = LABELS.index
    v[0, [i("happy"), i("neutral")]] = 4         # neutral comes first in FER+'s columns
    v[1, [i("angry"), i("surprise")]] = 3        # surprise before anger
    v[2, [i("fear"), i("disgust"), i("sad")]] = [2, 5, 1]
    assert data.ferplus_majority(v).tolist() == [i("neutral"), i("surprise"), i("disgust")]


def test_soft_targets_mix_the_vote_distribution_with_the_label():
    votes = np.zeros((2, 7), np.float32)
    votes[0, [LABELS.index("neutral"), LABELS.index("sad"), LABELS.index("fear")]] = [8, 1, 1]
    split = data.Split(np.zeros((2, 48, 48), np.uint8), np.array([0, 3]), np.arange(2), votes)
    targets = data.soft_targets(split, 0.5)
    expected = np.zeros((2, 7), np.float32)
    expected[0] = 0.5 * np.eye(7)[0]
    expected[0, [LABELS.index("neutral"), LABELS.index("sad"), LABELS.index("fear")]] += [0.4, 0.05, 0.05]
    expected[1, 3] = 1.0  # no votes: the FER-2013 label alone
    np.testing.assert_allclose(targets, expected, atol=1e-6)
    np.testing.assert_array_equal(data.soft_targets(split, 0.0), np.eye(7)[[0, 3]])
    assert data.soft_targets(split, 1.0)[0, LABELS.index("neutral")] == pytest.approx(0.8)


def test_validation_scores_count_ferplus_agreement_on_voted_faces_only():
    votes = np.zeros((4, 7), np.float32)
    votes[0, 3] = votes[1, 6] = votes[2, 4] = 5  # the fourth face has no votes
    val = data.Split(np.zeros((4, 48, 48), np.uint8), np.array([3, 4, 4, 0]), np.arange(4), votes)
    logits = torch.nn.functional.one_hot(torch.tensor([3, 6, 0, 0]), 7).float()
    fer, plus = train.validation_scores(logits, val)
    assert fer == pytest.approx(2 / 4)   # faces 0 and 3
    assert plus == pytest.approx(2 / 3)  # faces 0 and 1 of the three voted


def test_training_on_ferplus_votes_logs_both_accuracies_and_evaluate_reports_both(csv_path, tmp_path):
    from training import evaluate
    rows = [[0] * 7 + [0, 0, 0] if r % 10 == 0 else
            [5 if c == data.FERPLUS_EMOTIONS.index(next(k for k, v in data.FERPLUS_TO_OURS.items() if v == LABELS[r % 7])) else 0
             for c in range(7)] + [0, 1, 0] for r in range(30 * len(LABELS))]
    votes = write_votes(tmp_path / "votes.csv", rows)
    run = tmp_path / "run"
    train.main(run_args(csv_path, run, epochs=2) + ["--votes", str(votes), "--ferplus", "0.5", "--select", "mean"])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all(0 <= row["val_ferplus_acc"] <= 1 for row in log)
    best = torch.load(run / "best.pt", weights_only=False)
    assert best["best_val_acc"] == max((r["val_acc"] + r["val_ferplus_acc"]) / 2 for r in log)
    out = tmp_path / "eval"
    evaluate.main(["--model", str(run / "best.pt"), "--data", str(csv_path), "--votes", str(votes),
                   "--split", "val", "--out-dir", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    val_rows = data.load_csv(csv_path, cache_dir=tmp_path)["val"].rows
    assert metrics["ferplus"]["n"] == sum(1 for r in val_rows if r % 10)  # every tenth row has no votes
    assert (out / "confusion_ferplus.png").exists() and (out / "reliability_ferplus.png").exists()


def test_the_temperature_is_fitted_to_the_crowd_on_the_faces_it_voted_for():
    from training.export import calibration_targets
    votes = np.zeros((4, 7), np.float32)
    votes[0, [LABELS.index("neutral"), LABELS.index("sad")]] = [6, 4]
    votes[2, [LABELS.index("fear"), LABELS.index("surprise")]] = [5, 5]  # a tie: FER+ lists surprise first
    votes[3, LABELS.index("happy")] = 1  # the second face has no votes
    split = data.Split(np.arange(4, dtype=np.uint8)[:, None, None] * np.ones((4, 48, 48), np.uint8),
                       np.array([4, 0, 2, 3]), np.arange(4), votes)
    images, labels = calibration_targets(split, "ferplus")
    assert images[:, 0, 0].tolist() == [0, 2, 3]
    assert [LABELS[i] for i in labels] == ["neutral", "surprise", "happy"]
    images, labels = calibration_targets(split, "fer2013")
    assert len(images) == 4 and labels.tolist() == [4, 0, 2, 3]


def test_export_calibrated_on_the_crowd_records_it_and_both_accuracies(trained_run, csv_path, tmp_path):
    # Votes that contradict every label (each face's crowd names the next emotion), so a temperature
    # fitted to them differs from one fitted to the labels; subprocess: see the contract test above.
    labels = [int(line.split(",")[0]) for line in Path(csv_path).read_text().splitlines()[1:]]
    ferplus_column = {LABELS.index(data.FERPLUS_TO_OURS[name]): c for c, name in enumerate(data.FERPLUS_EMOTIONS)}
    rows = []
    for label in labels:
        counts = [0] * 10
        counts[ferplus_column[(label + 1) % 7]] = 3
        rows.append(counts)
    votes = write_votes(tmp_path / "votes.csv", rows)
    metas = {}
    for target in ("fer2013", "ferplus"):
        out = tmp_path / f"{target}.pt"
        done = subprocess.run([sys.executable, "-m", "training.export", "--checkpoint", str(trained_run / "best.pt"),
                               "--data", str(csv_path), "--votes", str(votes), "--calibrate-on", target,
                               "--out", str(out)], capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
        assert done.returncode == 0, done.stderr[-2000:]
        metas[target] = modelfile.read_meta(out)
    assert metas["ferplus"]["temperature_fitted_on"] == "ferplus" and metas["fer2013"]["temperature_fitted_on"] == "fer2013"
    assert metas["ferplus"]["val_accuracy"] == metas["fer2013"]["val_accuracy"] >= 0.9
    assert metas["ferplus"]["val_ferplus_accuracy"] <= 0.1  # the crowd never agrees with the net's labels
    assert metas["ferplus"]["temperature"] > 5 * metas["fer2013"]["temperature"]  # a wrong crowd flattens it
