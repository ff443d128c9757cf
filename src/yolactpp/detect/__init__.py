"""Detection: decode box deltas against the priors, filter by confidence, FastNMS (and the inverse
box encoding, for training targets)."""

from yolactpp.detect.decode import BOX_VARIANCES, decode_boxes, encode_boxes
from yolactpp.detect.detect import RawDetections, detect

__all__ = ["BOX_VARIANCES", "RawDetections", "decode_boxes", "detect", "encode_boxes"]
