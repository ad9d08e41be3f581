"""``python -m sensorium_models.torchrun ARGS``: ``sensorium train ARGS``, the entry point
``torchrun`` starts once per process (``-v``/``--verbose`` anywhere in ARGS).

Not named ``train``: a submodule of that name would replace the function
``sensorium_models.train`` once imported.

>>> # torchrun --nproc-per-node 4 -m sensorium_models.torchrun --mice F G H I J --out runs/f4
"""

import sys

from sensorium_models.cli import main

if __name__ == "__main__":
    flags = ("-v", "--verbose")
    args = sys.argv[1:]
    verbose = ["--verbose"] if any(a in flags for a in args) else []
    sys.exit(main([*verbose, "train", *(a for a in args if a not in flags)]))
