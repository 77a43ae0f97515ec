"""``python -m worker.cli``: the same as ``ims-worker`` (used by ``ims-worker run`` to start its children)."""

from __future__ import annotations

import sys

from worker.cli import main

sys.exit(main())
