"""Whether this CPU has integer dot-product instructions, without which int8 does not pay.

int8 convolutions are fast where one instruction multiplies and sums groups of 8-bit values into
32-bit lanes: AVX512-VNNI / AVX-VNNI and AMX on x86, the dot-product (``asimddp``) and ``i8mm``
extensions on ARM. Without them (plain AVX2 or AVX-512 x86) onnxruntime emulates the dot product
with 16-bit intermediate sums: barely faster than float32, and those sums can saturate.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from yolactpp.errors import YolactppWarning, warn_caller

__all__ = ["Int8Support", "SlowInt8Warning", "int8_support", "warn_if_int8_slow"]

#: /proc/cpuinfo flags (x86 "flags", ARM "Features") that give fast int8 dot products.
INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni", "asimddp", "i8mm")


class SlowInt8Warning(YolactppWarning):
    """int8 inference on a CPU without integer dot-product instructions."""


@dataclass(frozen=True)
class Int8Support:
    """What this CPU offers for int8: the fast instructions found, and whether we could look."""

    instructions: tuple[str, ...]
    known: bool

    @property
    def accelerated(self) -> bool:
        """True when an integer dot-product instruction was found (or we could not tell)."""
        return bool(self.instructions) or not self.known

    def describe(self) -> str:
        if not self.known:
            return "could not tell whether this CPU has int8 dot-product instructions"
        if self.instructions:
            return "int8 dot-product instructions: " + ", ".join(self.instructions)
        return (
            "this CPU has no int8 dot-product instructions (AVX512-VNNI, AVX-VNNI, AMX, ARM dot product): "
            "int8 inference will not pay here (little faster than float32, or slower) and may lose accuracy "
            "to 16-bit saturation; use the float32 model on this machine"
        )


def int8_support(cpuinfo: str | None = None) -> Int8Support:
    """Look up the int8 dot-product instructions in ``/proc/cpuinfo`` (or the text given), falling
    back to torch's CPU probe elsewhere; Apple silicon always has them."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = None
    if cpuinfo is not None:
        flags: set[str] = set()
        for line in cpuinfo.splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() in ("flags", "features"):
                flags.update(value.split())
        if flags:
            return Int8Support(tuple(f for f in INT8_FLAGS if f in flags), known=True)
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return Int8Support(("asimddp",), known=True)
    return _torch_probe()


def _torch_probe() -> Int8Support:
    try:
        import torch
    except ImportError:  # exported models run without torch
        return Int8Support((), known=False)

    probes = {"amx_int8": "_is_amx_tile_supported", "avx512_vnni": "_is_vnni_supported"}
    found, known = [], False
    for flag, probe in probes.items():
        fn = getattr(torch.cpu, probe, None)
        if fn is not None:
            known = True
            if fn():
                found.append(flag)
    return Int8Support(tuple(found), known=known)


def warn_if_int8_slow(support: Int8Support | None = None, weight_bits: int | None = None) -> Int8Support:
    """Warn (:class:`SlowInt8Warning`) when this CPU lacks int8 dot-product instructions; for a
    file with full 8-bit weights (``weight_bits=8``) the warning says that its sums can saturate here."""
    support = int8_support() if support is None else support
    if not support.accelerated:
        message = support.describe()
        if weight_bits == 8:
            message += (
                "; this file has full 8-bit weights, which those 16-bit sums can saturate (detections lost): "
                "quantize it again with weight_bits=7 (yolactpp quantize --weight-bits 7) for this CPU"
            )
        warn_caller(message, SlowInt8Warning)
    return support
