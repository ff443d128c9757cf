"""The library version, in a module of its own so that any module can read it without importing the
package ``__init__`` (which re-exports the whole public API)."""

__version__ = "0.1.0"
