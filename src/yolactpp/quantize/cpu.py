"""Kept for imports written before the int8 CPU check moved to :mod:`yolactpp.runtime.int8`."""

from yolactpp.runtime.int8 import INT8_FLAGS, Int8Support, SlowInt8Warning, int8_support, warn_if_int8_slow

__all__ = ["INT8_FLAGS", "Int8Support", "SlowInt8Warning", "int8_support", "warn_if_int8_slow"]
