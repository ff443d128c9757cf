"""Backbones: image tensor -> multi-scale feature maps (C3, C4, C5 feed the FPN)."""

from yolactpp.backbone.base import Backbone
from yolactpp.backbone.dcn import ModulatedDeformConv2d

__all__ = ["Backbone", "ModulatedDeformConv2d"]
