"""Heads on top of the FPN: prototypes, per-anchor predictions, anchors, mask re-scoring."""
