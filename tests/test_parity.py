"""Parity with the original implementation on the oracle checkpoints (all six models x 2 images).

float64 runs must match the goldens to their float64 tolerances (count, order, classes, scores to
1e-9 relative, boxes to 1e-6 px, masks); float32 runs to the looser float32 rules. The stage
fingerprints name the first stage that goes wrong when a case fails.
"""

from __future__ import annotations

import pytest
import torch

from tests.oracle.checkpoints import CONFIGS, key_manifest, make_state_dict, tensor_bytes_sha256
from tests.oracle.compare import IMAGES, check_fingerprint, check_float32, check_float64, golden, image_path
from yolactpp import YolactPP
from yolactpp.detect import detect
from yolactpp.postprocess import assemble_masks
from yolactpp.preprocess import preprocess, to_rgb_array


@pytest.fixture(scope="module", params=CONFIGS)
def config(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def model64(config: str, checkpoint) -> YolactPP:
    return YolactPP.from_pretrained(checkpoint(config)).to(torch.float64)


@pytest.fixture(scope="module")
def model32(config: str, checkpoint) -> YolactPP:
    return YolactPP.from_pretrained(checkpoint(config))


def test_generator_matches_oracle_self_check(config: str) -> None:
    """Our checkpoint generator reproduces the oracle's tensor-bytes hash (seed 0)."""
    expected = key_manifest(config)["self_check"]["seed0"]
    state = make_state_dict(config, seed=0)
    assert len(state) == expected["num_tensors"]
    assert tensor_bytes_sha256(state) == expected["sha256_concatenated_tensor_bytes"]


@pytest.mark.parametrize("image", IMAGES)
def test_float64_matches_golden(model64: YolactPP, config: str, image: str) -> None:
    det = model64.predict(image_path(image))
    assert det.scores.dtype == torch.float64 and det.boxes.dtype == torch.float64
    check_float64(det, golden(config, image))


@pytest.mark.parametrize("image", IMAGES)
def test_float32_within_tolerance(model32: YolactPP, config: str, image: str) -> None:
    det = model32.predict(image_path(image))
    assert det.scores.dtype == torch.float32
    check_float32(det, golden(config, image))


@pytest.mark.parametrize("image", IMAGES)
def test_stage_fingerprints(model64: YolactPP, config: str, image: str) -> None:
    """Every intermediate the goldens fingerprint, in pipeline order."""
    stages = golden(config, image)["stages"]
    prepared = preprocess([to_rgb_array(image_path(image))], model64.config.preprocess, torch.float64)
    with torch.inference_mode():
        out = model64.network(prepared.tensor)
        check_fingerprint("input", prepared.tensor, stages["input"])
        assert len(out.backbone) == len(stages["backbone"])
        for i, (t, fp) in enumerate(zip(out.backbone, stages["backbone"])):
            check_fingerprint(f"backbone[{i}]", t, fp)
        for i, (t, fp) in enumerate(zip(out.fpn, stages["fpn"])):
            check_fingerprint(f"fpn[{i}]", t, fp)
        check_fingerprint("proto", out.proto, stages["proto"])
        check_fingerprint("loc", out.loc, stages["loc"])
        check_fingerprint("conf", out.conf, stages["conf"])
        check_fingerprint("mask", out.coefficients, stages["mask"])
        check_fingerprint("priors", out.priors, stages["priors"])
        raw = detect(out.loc[0], out.conf[0], out.coefficients[0], out.priors, model64.config.detect)
        assert len(raw) == stages["num_detections_before_postprocess"]
        if "maskiou_net" in stages:
            soft = assemble_masks(out.proto[0], raw.coefficients, raw.boxes)
            check_fingerprint("maskiou_net", model64.network.maskiou_net(soft.unsqueeze(1)), stages["maskiou_net"])
        else:
            assert model64.network.maskiou_net is None
