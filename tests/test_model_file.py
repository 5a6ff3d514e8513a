"""The shipped model files: model/fer.pt, which any PyTorch build runs, and the faster
engine-specific file beside it, which the app serves only where it loads and agrees; the same pair
for model/fer2013.pt, the net trained on FER-2013's labels alone."""
import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import modelfile
from app import create_app
from recognition.classifier import PROBE_FACES, classify, engine_files, load_classifier, load_model_file
from tests.support import ROOT

MODEL = ROOT / "model" / "fer.pt"
ONEDNN = ROOT / "model" / "fer.onednn.pt"
FER2013 = ROOT / "model" / "fer2013.pt"


def test_portable_file_runs_with_pytorch_defaults_in_a_fresh_process():
    script = ("import torch; m = torch.jit.load('model/fer.pt'); p = m(torch.rand(4, 1, 48, 48)); "
              "print(list(p.shape), round(float(p.sum()), 4), sorted({n.kind() for n in m.graph.nodes()}))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("[4, 7] 4.0")
    assert "quantized::" not in done.stdout and "quantize" not in done.stderr


def test_the_app_serves_the_onednn_file_where_this_build_has_the_engine():
    served = load_classifier(MODEL)
    has_onednn = "onednn" in torch.backends.quantized.supported_engines
    assert engine_files(MODEL) == ([ONEDNN] if has_onednn else [])
    assert served.meta["dtype"] == ("int8" if has_onednn else "fp32")


def test_the_two_shipped_files_give_the_same_answer_on_a_face():
    face = np.array(Image.open(ROOT / "static" / "samples" / "face-crop.png").convert("L").resize((48, 48), Image.Resampling.BOX))
    portable, fast = load_model_file(MODEL), load_model_file(ONEDNN)
    a, b = classify(portable, face[None]), classify(fast, face[None])
    assert a.argmax() == b.argmax()
    assert np.abs(a - b).max() < 0.01


class Swapped(torch.nn.Module):
    """Another model: the portable file with its happy and sad outputs exchanged."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x)[:, [0, 1, 2, 4, 3, 5, 6]]


def write_swapped(path):
    extra = {"meta.json": ""}
    module = torch.jit.load(str(MODEL), _extra_files=extra)
    torch.jit.save(modelfile.script(Swapped(module)), str(path), _extra_files=extra)


@pytest.mark.parametrize("broken", ["corrupt", "another model"])
def test_the_app_falls_back_to_the_portable_file(tmp_path, caplog, broken):
    shutil.copy(MODEL, tmp_path / "fer.pt")
    fast = tmp_path / "fer.onednn.pt"
    if broken == "corrupt":
        fast.write_bytes(b"PK\x03\x04 not a model")
    else:
        write_swapped(fast)
    with caplog.at_level(logging.WARNING, logger="recognition.classifier"):
        served = load_classifier(tmp_path / "fer.pt")
    assert served.meta["dtype"] == "fp32"
    np.testing.assert_allclose(classify(served, PROBE_FACES), classify(load_model_file(MODEL), PROBE_FACES), atol=1e-6)
    assert f"serving {tmp_path / 'fer.pt'}" in caplog.text and str(fast) in caplog.text


def test_a_file_for_an_engine_this_build_lacks_is_never_tried(tmp_path):
    shutil.copy(MODEL, tmp_path / "fer.pt")
    shutil.copy(ONEDNN, tmp_path / "fer.nosuchengine.pt")
    assert engine_files(tmp_path / "fer.pt") == []
    assert load_classifier(tmp_path / "fer.pt").meta["dtype"] == "fp32"


@pytest.mark.parametrize("portable", [MODEL, FER2013], ids=["fer.pt", "fer2013.pt"])
def test_shipped_files_describe_themselves(portable):
    metas = {}
    for path in (portable, portable.with_suffix(".onednn.pt")):
        extra = {"meta.json": ""}
        torch.jit.load(str(path), _extra_files=extra)
        metas[path.name.split(".", 1)[1]] = json.loads(extra["meta.json"])
    assert metas["pt"]["dtype"] == "fp32" and metas["pt"]["quantisation"] is None
    assert metas["onednn.pt"]["quantisation"]["engine"] == "onednn"
    assert metas["pt"]["architecture"] == metas["onednn.pt"]["architecture"]


def test_the_default_agrees_with_the_crowd_and_the_fer2013_file_with_its_labels():
    """The default is the net trained on the FER+ votes, its probabilities calibrated against the
    crowd's plurality; fer2013.pt, served with FER_MODEL_PATH, is calibrated on FER-2013's labels."""
    default = load_classifier(MODEL)
    assert default.summary["calibrated_on"] == "ferplus"
    assert default.summary["ferplus_accuracy"] > default.summary["accuracy"] + 0.05
    fer2013 = create_app({"MODEL_PATH": str(FER2013)}).extensions["classifier"]
    has_onednn = "onednn" in torch.backends.quantized.supported_engines
    assert fer2013.meta["dtype"] == ("int8" if has_onednn else "fp32")
    assert fer2013.summary["accuracy"] > default.summary["accuracy"] and fer2013.summary["calibrated_on"] == "fer2013"
    face = PROBE_FACES[:4]
    assert not np.allclose(classify(default, face), classify(fer2013, face), atol=0.01)


def test_scripting_survives_an_attribute_at_the_address_of_a_freed_builtin(monkeypatch):
    """What made about one export in five fail: PyTorch's table of builtins, keyed by id(), still
    holding the address of a freed function when a conv's padding tuple is allocated there."""
    conv = torch.nn.Conv2d(1, 2, 3, padding=1)
    padding = conv._reversed_padding_repeated_twice
    builtins = dict(torch.jit._builtins._get_builtin_table())
    builtins[id(padding)] = "aten::add"
    monkeypatch.setattr(torch.jit._builtins, "_builtin_table", builtins)
    with pytest.raises(RuntimeError, match="builtin cannot be used as a value"):
        torch.jit.script(torch.nn.Sequential(conv))
    scripted = modelfile.script(torch.nn.Sequential(conv))
    assert conv._reversed_padding_repeated_twice == padding and conv._reversed_padding_repeated_twice is not padding
    x = torch.rand(1, 1, 8, 8)
    assert torch.equal(scripted(x), conv(x))


@pytest.mark.parametrize("meta, problem", [
    ({"labels": ["a"] * 7, "quantisation": "onednn"}, None),  # an odd quantisation entry names no engine
    ({"labels": "angry"}, "must be an object with a list of 7 labels"),
    (["angry"], "must be an object with a list of 7 labels"),
    ({"labels": ["a"] * 6}, "must list 7 labels, found 6"),
])
def test_metadata_of_another_shape_is_a_clear_model_error(tmp_path, meta, problem):
    extra = {"meta.json": ""}
    module = torch.jit.load(str(MODEL), _extra_files=extra)
    path = tmp_path / "odd.pt"
    torch.jit.save(module, str(path), _extra_files={"meta.json": json.dumps(meta)})
    if problem is None:
        assert modelfile.load(path)[1] == meta
    else:
        with pytest.raises(modelfile.ModelError, match=problem):
            modelfile.load(path)
