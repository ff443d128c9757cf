"""Detection: decode box deltas against the priors, filter by confidence, FastNMS."""

from yolactpp.detect.decode import decode_boxes
from yolactpp.detect.detect import RawDetections, detect

__all__ = ["RawDetections", "decode_boxes", "detect"]
