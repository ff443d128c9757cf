"""Fake (meta) kernels for the native ops, registered only once the library is loaded."""
