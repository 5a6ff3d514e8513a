"""Recover a training checkpoint from an exported file, for a second stage when runs/ is gone.

    python -m training.recover --exported model/fer.pt --out runs/recovered/best.pt

Export folds each BatchNorm into the conv before it and stores the weights in the serving
dtype, so the original BatchNorm parameters are lost. This puts the folded weights back into
the training architecture and re-expands every BatchNorm so that the net computes the same
function in both modes: with the per-channel mean m and variance v of each conv's output over
training images, BatchNorm gets running statistics (m, v), scale sqrt(v + eps) and shift
m + folded bias. The recovered checkpoint works with --init, --teacher, evaluate and export;
its eval-mode logits equal the exported file's (before its temperature) up to the serving
dtype's rounding; from an int8 file, the weights are the int8 ones dequantised, and the
activations, which the file rounds to uint8, are float again. Optimiser state and history are
not recovered: it is a start, not a resume.
"""
import argparse

import torch
from torch import nn

from modelfile import DEFAULT_PATH, FACE_SIZE, load as load_exported
from training.checkpoint import make_checkpoint, save_atomic
from training.data import load_dataset
from training.engine import Normalize, to_tensor
from training.models import build_model, model_cost


def read_exported(path):
    """(meta dict, [(weight, bias)] of every conv and linear in graph order) of an exported file.

    Float files keep their (BatchNorm-folded) weights as graph constants; int8 files keep them
    packed for the quantised kernels, and are unpacked and dequantised here, with the std that
    the int8 export folds into the first conv taken out again.
    """
    module, meta = load_exported(path)
    layers = []
    for node in module.graph.nodes():
        kind = node.kind()
        if kind in ("aten::conv2d", "aten::linear"):
            weight, bias = (node.inputsAt(i).toIValue() for i in (1, 2))
        elif kind.startswith(("quantized::conv2d", "quantized::linear")) and "unpack" not in kind:
            packed = next(v for v in (i.toIValue() for i in node.inputs()) if isinstance(v, torch.ScriptObject))
            unpack = torch.ops.quantized.linear_unpack if "linear" in kind else torch.ops.quantized.conv2d_unpack
            weight, bias = unpack(packed)
            weight = weight.dequantize()
        else:
            continue
        layers.append((weight.float(), None if bias is None else bias.float()))
    if meta.get("dtype") == "int8" and layers:
        first_weight, first_bias = layers[0]
        layers[0] = (first_weight * meta["normalisation"]["std"], first_bias)
    return meta, layers


def pair_layers(order, layers):
    """[(module, (weight, bias))]: each module with the first unused exported layer of its weight shape.

    Graph order is execution order, except that an int8 graph runs a block's projection
    shortcut before the conv whose residual add it absorbs; layers of one shape keep their order.
    """
    unused = list(range(len(layers)))
    pairs = []
    for module in order:
        match = next((i for i in unused if layers[i][0].shape == module.weight.shape), None)
        if match is None:
            raise ValueError(f"no exported layer of shape {tuple(module.weight.shape)} left for {type(module).__name__}")
        unused.remove(match)
        pairs.append((module, layers[match]))
    return pairs


def execution_order(net):
    """The net's conv and linear modules in the order a forward pass runs them."""
    order, hooks = [], []
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            hooks.append(module.register_forward_hook(lambda m, i, o: order.append(m)))
    with torch.no_grad():
        net.eval()(torch.zeros(1, 1, FACE_SIZE, FACE_SIZE))
    for hook in hooks:
        hook.remove()
    return order


def following_batchnorm(net):
    """{conv: the BatchNorm2d right after it in the same Sequential}."""
    pairs = {}
    for module in net.modules():
        if isinstance(module, nn.Sequential):
            children = list(module)
            for a, b in zip(children, children[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                    pairs[a] = b
    return pairs


def recover_net(architecture, layers, images):
    """The training net with the exported weights and re-expanded BatchNorm (images: normalised, N x 1 x 48 x 48)."""
    net = build_model(architecture)
    order = execution_order(net)
    if len(layers) != len(order):
        raise ValueError(f"the exported graph has {len(layers)} conv/linear layers; {architecture} has {len(order)}")
    bns = following_batchnorm(net)
    with torch.no_grad():
        for module, (weight, bias) in pair_layers(order, layers):
            module.weight.copy_(weight)
            if module in bns:
                # Identity BatchNorm plus the folded bias, so the net computes the exported function.
                bn = bns[module]
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
                bn.weight.fill_(1.0)
                bn.bias.copy_(bias)
            elif module.bias is not None:
                module.bias.copy_(bias)

        # Statistics of every conv's output (before its bias) over the given images.
        stats, hooks = {}, []
        for conv, bn in bns.items():
            def record(m, inputs, output, bn=bn):
                y = output.double()
                stats[bn] = (y.mean((0, 2, 3)), y.var((0, 2, 3), unbiased=False))
            hooks.append(conv.register_forward_hook(record))
        net.eval()(images)
        for hook in hooks:
            hook.remove()
        for bn, (m, v) in stats.items():
            bn.running_mean.copy_(m)
            bn.running_var.copy_(v)
            bn.bias.add_(m)
            bn.weight.copy_((v + bn.eps).sqrt())
    return net.eval()


def recover_checkpoint(exported_path, data_path=None, n_images=4096):
    """A training checkpoint dict (model, config, normalisation, cost, command) from an exported file."""
    meta, layers = read_exported(exported_path)
    config = meta["config"]
    mean, std = meta["normalisation"]["mean"], meta["normalisation"]["std"]
    train = load_dataset(data_path or config["data"], seed=config["seed"])["train"]
    normalize = Normalize(mean, std)
    images = normalize(to_tensor(train.images[:n_images]))
    net = recover_net(meta["architecture"], layers, images)
    model = nn.Sequential(normalize, net)
    return make_checkpoint(model.state_dict(), config, mean, std, model_cost(net), meta["command"],
                           epoch=meta["epoch"], best_val_acc=meta["val_accuracy"], recovered_from=str(exported_path))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exported", default=str(DEFAULT_PATH), help="exported TorchScript file (default: model/fer.pt)")
    p.add_argument("--out", required=True, help="checkpoint to write, e.g. runs/recovered/best.pt")
    p.add_argument("--data", default=None, help="dataset for the BatchNorm statistics (default: the file's training --data)")
    args = p.parse_args(argv)
    checkpoint = recover_checkpoint(args.exported, args.data)
    save_atomic(checkpoint, args.out)
    print(f"wrote {args.out} ({checkpoint['config']['model']}, epoch {checkpoint['epoch']}, from {args.exported})")


if __name__ == "__main__":
    main()
