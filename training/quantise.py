"""Post-training int8 quantisation of a trained net, for the engine-specific file (model/fer.onednn.pt).

PyTorch marks torch.ao.quantization as deprecated in favour of torchao, whose flow targets
torch.compile, not TorchScript; the pinned torch (2.13) has it and runs what it produces.
"""
import copy
import warnings

import numpy as np
import torch
from torch import nn
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.backend_config import get_onednn_backend_config
from torch.ao.quantization.fx.custom_config import PrepareCustomConfig
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

from modelfile import FACE_SIZE
from training.engine import to_tensor

CALIBRATION_IMAGES = 2048
# int8 files use PyTorch's oneDNN quantised engine, the one that runs conv + add + ReLU as one
# kernel; a process must select it before it loads such a file (meta.json's quantisation.engine).
INT8_ENGINE = "onednn"

warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated")
warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated")
warnings.filterwarnings("ignore", message=".*reduce_range will be deprecated")


class QuantizeInput(nn.Module):
    """Grey values in [0, 1] -> uint8 with scale 1/255, the int8 net's input.

    The zero point is the training mean as a grey level, so the quantised tensor holds
    x - zero_point / 255 and is exact for pixel / 255 inputs. The conv that reads it pads with
    the zero point, that is with the mean grey, as normalisation's zero padding does; the
    division by the std is folded into that conv's weights (`fold_normalisation`).
    """

    def __init__(self, mean: float):
        super().__init__()
        self.zero_point = int(round(mean * 255))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.quantize_per_tensor(x - self.zero_point / 255, 1 / 255, self.zero_point, torch.quint8)


def fold_normalisation(net, std):
    """A copy of net that takes x - mean instead of (x - mean) / std: 1/std goes into its first conv.

    Exact, zero padding included, as long as that conv is the first thing the net runs (checked).
    """
    net = copy.deepcopy(net).eval()
    leaves = [m for m in net.modules() if not list(m.children())]
    ran = []
    hooks = [m.register_forward_pre_hook(lambda m, _: ran.append(m)) for m in leaves]
    with torch.no_grad():
        net(torch.zeros(1, 1, FACE_SIZE, FACE_SIZE))
    for hook in hooks:
        hook.remove()
    if not isinstance(ran[0], nn.Conv2d):
        raise ValueError(f"int8 export folds the normalisation into a first conv; this net starts with {type(ran[0]).__name__}")
    with torch.no_grad():
        ran[0].weight.div_(std)
    return net


def quantize_int8(net, calibration, mean):
    """Post-training static int8 quantisation (PyTorch's FX graph mode, oneDNN backend).

    The net takes the quantised output of QuantizeInput(mean). Convs and linear get per-channel
    int8 weights; activations get uint8 scales from histograms of the calibration images (grey
    values in [0, 1], N x 1 x 48 x 48). BatchNorm, ReLU and each residual add are folded into
    the convs (quantized::conv2d_add_relu), which oneDNN runs with AVX-512 VNNI where the CPU has it.
    """
    torch.backends.quantized.engine = INT8_ENGINE
    backend = get_onednn_backend_config()
    prepare_input = QuantizeInput(mean)
    example = prepare_input(calibration[:1]).dequantize()
    prepared = prepare_fx(net, get_default_qconfig_mapping(INT8_ENGINE), (example,), backend_config=backend,
                          prepare_custom_config=PrepareCustomConfig().set_input_quantized_indexes([0]))
    with torch.no_grad():
        for batch in calibration.split(256):
            prepared(prepare_input(batch).dequantize())
    return prepare_input, convert_fx(prepared, backend_config=backend)


def calibration_images(train, n, seed):
    """n training images, drawn without replacement with a fixed seed, as floats in [0, 1]."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(train), size=min(n, len(train)), replace=False))
    return to_tensor(train.images[pick])
