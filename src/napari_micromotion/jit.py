"""Whether numba kernels still have to be compiled (the first run after installation takes about a minute)."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["ready"]


def ready(*dispatchers: Any) -> bool:
    """True when every numba dispatcher is compiled in this process or has an on-disk cache to load.

    Uses numba's cache index file; when it cannot tell, says False (the worst case is a
    needless "compiling" notice).
    """
    for d in dispatchers:
        if getattr(d, "signatures", None):
            continue
        try:
            if os.path.exists(d._cache._cache_file._index_path):
                continue
        except AttributeError:
            pass
        return False
    return True
