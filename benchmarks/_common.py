"""Helpers shared by the benchmark scripts: the repository root, synthetic weights, table output."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def checkpoint_for(model: str, path: str | None = None) -> Path:
    """``path`` when given, else the deterministic synthetic checkpoint of the test oracle (speed
    does not depend on the weights' values, and the benchmarks must run offline)."""
    if path:
        return Path(path)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.oracle.checkpoints import write_checkpoint

    return write_checkpoint(model, Path(tempfile.gettempdir()) / "yolactpp-bench-weights")


def markdown_table(rows: list[list[str]], header: list[str]) -> str:
    """Rows as a padded Markdown table (readable in a terminal, pasteable into docs)."""
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])
