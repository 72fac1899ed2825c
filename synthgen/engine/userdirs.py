"""Where synthgen keeps what it can rebuild: `$SYNTHGEN_CACHE_DIR`, else ~/.cache/synthgen."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(kind: str) -> Path:
    root = os.environ.get("SYNTHGEN_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "synthgen")
    return Path(root) / kind
