"""The one place a network is built from weights: construct it from their config, load strictly.

Every weights source (:mod:`yolactpp.pretrained` dispatches them) hands over a
:class:`~yolactpp.checkpoint.LoadedWeights`; ``YolactPP.from_pretrained`` and ``convert`` both end
here, so every source gets the same checks (every key, every shape, finite values).
"""

from __future__ import annotations

from yolactpp.checkpoint import LoadedWeights, load_state_dict_strict
from yolactpp.network import YolactNetwork

__all__ = ["build_network"]


def build_network(weights: LoadedWeights) -> YolactNetwork:
    """A :class:`YolactNetwork` for ``weights.config`` holding ``weights.state`` (strict load)."""
    network = YolactNetwork(weights.config)
    load_state_dict_strict(network, weights.state, weights.source)
    return network
