"""Build a Triton model repository entry; the same as ``fncall build-model``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.modelbuild.cli import main

if __name__ == "__main__":
    sys.exit(main())
