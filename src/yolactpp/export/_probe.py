"""Child process of :func:`yolactpp.export.verify.run_in_child`: ``python -m yolactpp.export._probe FILE FEEDS OUT``.

Loads the exported ``FILE`` as a user would (:func:`yolactpp.export.load_exported`), runs its graph
once on the arrays in ``FEEDS`` (``.npz``) and writes the outputs to ``OUT`` (``.npz``). A file
that crashes its loader takes only this process down.
"""

from __future__ import annotations

import sys

import numpy as np


def main(argv: list[str]) -> int:
    path, feeds_file, result_file = argv
    from yolactpp.export.predictor import load_exported

    model = load_exported(path, threads=1)
    with np.load(feeds_file) as data:
        feeds = {name: data[name] for name in data.files}
    outputs = model._run(feeds)
    np.savez(result_file, allow_pickle=False, **outputs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
