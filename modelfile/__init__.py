"""The model file's contract: what training writes into model/fer.pt and what serving and analysis
rely on. Both worlds import this module; neither imports the other.

  input   float32 (N, 1, 48, 48), grey values in [0, 1] (pixel / 255)
  output  float32 (N, 7) softmax probabilities, in the order of meta.json's "labels"
  inside  normalisation, the fitted temperature and any test-time augmentation
  meta    a meta.json inside the TorchScript archive: labels, input, architecture, parameter
          count, training command and config, accuracies, date
  engine  a file for one quantised engine (model/fer.onednn.pt beside model/fer.pt) names it in
          meta["quantisation"]["engine"]; load() selects that engine before loading the file
"""
import json
import pickle
import zipfile
from pathlib import Path

import torch

# FER-2013's classes in the order of its label column; every file lists its own in meta.json.
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FACE_SIZE = 48
DEFAULT_PATH = Path(__file__).resolve().parent.parent / "model" / "fer.pt"
META = "meta.json"


class ModelError(RuntimeError):
    """A model file that is missing or does not honour the contract."""


def input_meta():
    """meta.json's description of the input every file takes."""
    return {"shape": [None, 1, FACE_SIZE, FACE_SIZE], "dtype": "float32", "range": [0.0, 1.0],
            "grey": True, "normalised_inside": True}


def read_meta(path):
    """meta.json of a model file, read from the archive without loading the model ({} if absent or unreadable)."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith(f"/extra/{META}")), None)
            return json.loads(archive.read(name)) if name else {}
    except (zipfile.BadZipFile, json.JSONDecodeError, OSError):
        return {}


def engine_files(path):
    """Files beside `path` named for a quantised engine this PyTorch build has (fer.pt -> fer.onednn.pt)."""
    path = Path(path)
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    return [f for f in (path.with_name(f"{path.stem}.{e}{path.suffix}") for e in engines) if f.is_file()]


def quantized_engine(meta):
    """The quantised engine a file's metadata names, or None (float files, or metadata of another shape)."""
    quantisation = meta.get("quantisation") if isinstance(meta, dict) else None
    engine = quantisation.get("engine") if isinstance(quantisation, dict) else None
    return engine if isinstance(engine, str) else None


def load(path):
    """(module in eval mode, meta) of a model file, in the quantised engine it names; ModelError naming
    the file and the problem. Float files leave the process's quantised engine as it is."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    engine = quantized_engine(read_meta(path))
    if engine:
        if engine not in torch.backends.quantized.supported_engines:
            raise ModelError(f"{path}: needs the quantised engine {engine!r}, which this PyTorch build lacks")
        torch.backends.quantized.engine = engine
    extra = {META: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError, OSError) as e:
        reason = str(e).strip().splitlines()[0].split(". ")[0][:160] if str(e).strip() else type(e).__name__
        raise ModelError(f"{path}: not a loadable TorchScript model ({reason})") from None
    try:
        meta = json.loads(extra[META] or "{}")
    except json.JSONDecodeError:
        raise ModelError(f"{path}: {META} inside the model is not valid JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("labels"), list):
        raise ModelError(f"{path}: {META} must be an object with a list of {len(LABELS)} labels")
    if len(meta["labels"]) != len(LABELS):
        raise ModelError(f"{path}: {META} must list {len(LABELS)} labels, found {len(meta['labels'])}")
    return module.eval(), meta


def script(module):
    """torch.jit.script, safe from a clash of ids. Scripting takes any module attribute whose id() is
    in PyTorch's table of builtin functions for that builtin, and the table keys functions by id, so
    once one of them is freed, a conv's padding tuple allocated at its address makes the export fail
    ("builtin cannot be used as a value"; seen in about one suite run in five). Such an attribute
    (a tuple, a list, a number or a string) is given an equal copy at another address first."""
    builtins = torch.jit._builtins._get_builtin_table()
    for part in module.modules():
        for name, value in list(vars(part).items()):
            if id(value) in builtins and isinstance(value, (tuple, list, int, float, str)):
                copies = [pickle.loads(pickle.dumps(value)) for _ in range(4)]  # alive at once: 4 addresses
                vars(part)[name] = next((c for c in copies if id(c) not in builtins), value)
    return torch.jit.script(module)


def save(module, meta, out):
    """Script, freeze and save a module with its meta.json inside, atomically; returns the saved path."""
    scripted = torch.jit.freeze(script(module))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.jit.save(scripted, str(tmp), _extra_files={META: json.dumps(meta, indent=2)})
    tmp.replace(out)
    return out
