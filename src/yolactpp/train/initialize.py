"""Where a training run's weights come from: fine-tuning surgery, ImageNet backbones, frozen BatchNorm.

- :func:`fine_tune_network`: a zoo model / checkpoint / folder retargeted to the dataset's classes.
  When the class count differs, only the class-dependent layers are re-initialised: the head's
  confidence conv (``prediction_layers.0.conf_layer``) and, for YOLACT++, the mask-IoU net's final
  per-class 1x1 conv. (The semantic-segmentation conv is class-dependent too; it is a training-only
  module that the trainer always creates fresh, see :mod:`yolactpp.train.semantic`.)
- :func:`network_from_backbone`: the original's ``init_weights``: an ImageNet ResNet (a torchvision
  state dict) in the backbone, every other conv Xavier-uniform with zero bias.
- :func:`set_train_mode`: training mode with BatchNorm frozen (inference statistics, no gradients).

Fresh layers are drawn from a generator seeded by the run's seed, so two runs start identically.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from yolactpp.backbone.resnet import ResNet
from yolactpp.checkpoint import CheckpointError, _preview
from yolactpp.config import AnchorConfig, ModelConfig
from yolactpp.errors import InvalidArgumentError, MissingFileError
from yolactpp.network import YolactNetwork

__all__ = [
    "class_dependent_prefixes",
    "fine_tune_network",
    "fresh_network",
    "load_backbone_weights",
    "network_from_backbone",
    "set_train_mode",
    "training_config",
    "xavier_init",
]


def training_config(
    config: ModelConfig,
    class_names: Sequence[str],
    category_ids: Sequence[int] | None,
    image_size: int | None = None,
) -> ModelConfig:
    """``config`` for the dataset's classes (and their category ids); ``image_size`` changes the
    input size and scales the anchors with it, as the original's im700 config does."""
    changes: dict[str, object] = {
        "class_names": tuple(class_names),
        "category_ids": None if category_ids is None else tuple(category_ids),
    }
    if image_size is not None and image_size != config.preprocess.size:
        factor = image_size / config.preprocess.size
        changes["preprocess"] = dataclasses.replace(config.preprocess, size=image_size)
        changes["anchors"] = AnchorConfig(
            scales=tuple(tuple(s * factor for s in level) for level in config.anchors.scales),
            aspect_ratios=config.anchors.aspect_ratios,
            square=config.anchors.square,
        )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def class_dependent_prefixes(config: ModelConfig) -> tuple[str, ...]:
    """State-dict key prefixes whose shapes depend on the class count."""
    prefixes = ["prediction_layers.0.conf_layer."]
    if config.use_maskiou:
        prefixes.append(f"maskiou_net.maskiou_net.{2 * len(config.maskiou_channels)}.")
    return tuple(prefixes)


def _convs(module: nn.Module, skip: nn.Module | None = None) -> Iterator[nn.Conv2d]:
    excluded = set() if skip is None else {id(m) for m in skip.modules()}
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and id(m) not in excluded:
            yield m


def xavier_init(module: nn.Module, generator: torch.Generator, skip: nn.Module | None = None) -> None:
    """Xavier-uniform weights and zero biases for every conv of ``module`` outside ``skip`` (the
    original's ``init_weights`` for the layers after the backbone)."""
    with torch.no_grad():
        for conv in _convs(module, skip):
            fan_in = conv.weight[0].numel()
            fan_out = conv.weight.shape[0] * conv.weight[0, 0].numel()
            bound = (6.0 / (fan_in + fan_out)) ** 0.5
            conv.weight.copy_(torch.rand(conv.weight.shape, generator=generator, dtype=torch.float64) * 2 * bound - bound)
            if conv.bias is not None:
                conv.bias.zero_()


def fine_tune_network(
    network: YolactNetwork, config: ModelConfig, generator: torch.Generator
) -> tuple[YolactNetwork, tuple[str, ...]]:
    """A network for ``config`` (the dataset's classes) holding ``network``'s weights.

    Returns it with the state-dict keys that were re-initialised: none when the class count is
    the same, else the class-dependent layers (:func:`class_dependent_prefixes`, Xavier-uniform,
    zero bias). Every other tensor is copied bit for bit.
    """
    tuned = YolactNetwork(config)
    fresh: list[str] = []
    if config.num_classes != network.config.num_classes:
        prefixes = class_dependent_prefixes(config)
        for name, module in tuned.named_modules():
            if isinstance(module, nn.Conv2d) and f"{name}." in prefixes:
                xavier_init(module, generator)
        fresh = sorted(k for k in tuned.state_dict() if k.startswith(prefixes))
    source = network.state_dict()
    target = tuned.state_dict()
    mismatched = [k for k in target if k not in fresh and (k not in source or source[k].shape != target[k].shape)]
    if mismatched:
        raise CheckpointError(
            f"cannot fine-tune {network.config.name!r} as {config.name!r}: {len(mismatched)} tensor(s) differ "
            f"beyond the class-dependent layers: {_preview(mismatched)}"
        )
    with torch.no_grad():
        for key, tensor in target.items():
            if key not in fresh:
                tensor.copy_(source[key])
    return tuned, tuple(fresh)


def _torchvision_key(key: str) -> str:
    """torchvision ResNet name -> ours: ``layer1.`` -> ``layers.0.`` (the original's rule)."""
    if key.startswith("layer") and key[5:6].isdigit():
        return f"layers.{int(key[5]) - 1}{key[6:]}"
    return key


def load_backbone_weights(backbone: nn.Module, source: str | os.PathLike[str] | Mapping[str, torch.Tensor]) -> None:
    """Copy a torchvision ResNet state dict (or a file holding one) into a ResNet backbone.

    The classifier (``fc.*``) and BatchNorm counters are ignored; deformable layers take the
    plain 3x3 weight and keep their zero-initialised offsets and bias. Any other missing,
    unexpected or mis-shaped key (e.g. ResNet-101 weights for a ResNet-50) raises
    :class:`~yolactpp.checkpoint.CheckpointError` naming them.
    """
    if not isinstance(backbone, ResNet):
        raise InvalidArgumentError(
            f"backbone weights can only be loaded into a ResNet backbone, this model has {type(backbone).__name__}"
        )
    label = "backbone weights"
    if isinstance(source, Mapping):
        raw: object = source
    else:
        path = Path(source)
        label = str(path)
        if not path.is_file():
            raise MissingFileError(f"backbone weights file not found: {path}")
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle errors, truncated files, non-tensor payloads
            raise CheckpointError(f"{path} is not a readable torch state dict: {exc}") from None
    if isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise CheckpointError(f"{label} must hold a state dict of tensors (torchvision's resnet50().state_dict())")
    state = {
        _torchvision_key(k): v for k, v in raw.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    }
    ours = {k: v for k, v in backbone.state_dict().items() if not k.endswith("num_batches_tracked")}
    optional = {k for k in ours if ".conv2.conv_offset_mask." in k or (k.endswith(".conv2.bias") and k in ours)}
    missing = sorted(set(ours) - set(state) - optional)
    unexpected = sorted(set(state) - set(ours))
    mismatched = sorted(
        f"{k} (file {list(state[k].shape)}, model {list(ours[k].shape)})"
        for k in set(ours) & set(state)
        if state[k].shape != ours[k].shape
    )
    if missing or unexpected or mismatched:
        parts = [f"{label} do not fit this {type(backbone).__name__} backbone"]
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_preview(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_preview(unexpected)}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es): {_preview(mismatched)}")
        parts.append("expected a torchvision ResNet of the same depth (resnet50 or resnet101)")
        raise CheckpointError("; ".join(parts))
    with torch.no_grad():
        for key, tensor in backbone.state_dict().items():
            if key in state:
                tensor.copy_(state[key])


def network_from_backbone(
    config: ModelConfig, backbone_weights: str | os.PathLike[str] | Mapping[str, torch.Tensor], generator: torch.Generator
) -> YolactNetwork:
    """A fresh network for ``config``: ImageNet backbone, every other conv Xavier-uniform, zero bias."""
    network = YolactNetwork(config)
    load_backbone_weights(network.backbone, backbone_weights)
    xavier_init(network, generator, skip=network.backbone)
    return network


def fresh_network(config: ModelConfig, generator: torch.Generator) -> YolactNetwork:
    """A network for ``config`` with no pretrained weights: the backbone keeps torch's default
    initialisation, every other conv is Xavier-uniform with zero bias."""
    network = YolactNetwork(config)
    xavier_init(network, generator, skip=network.backbone)
    return network


def set_train_mode(network: nn.Module, freeze_batchnorm: bool) -> None:
    """Training mode; with ``freeze_batchnorm`` every BatchNorm stays in inference mode (running
    statistics) and its affine parameters get no gradients, as the original's ``freeze_bn``."""
    network.train()
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            if freeze_batchnorm:
                module.eval()
            for parameter in module.parameters(recurse=False):
                parameter.requires_grad_(not freeze_batchnorm)
