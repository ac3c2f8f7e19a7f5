"""The workload's data (../../shared/bench/WORKLOAD.md), in memory, one copy per worker process.

Both benchmark apps import it, so they serve the same data from the same kind of store.
``WIDGETS`` (environment, default 20) sets the number of widgets: 200 makes the page about ten
times heavier without changing what a toggle touches.
"""

from __future__ import annotations

import os
from typing import Any

N_TODOS = 200
N_ITEMS = 50
N_WIDGETS = int(os.environ.get("WIDGETS", "20"))


def make_todos() -> dict[int, dict[str, Any]]:
    return {
        i: {
            "id": i,
            "title": f"Todo #{i}: write section {i} of the quarterly report",
            "done": i % 3 == 0,
        }
        for i in range(1, N_TODOS + 1)
    }


def make_widgets(count: int = N_WIDGETS) -> list[dict[str, Any]]:
    return [
        {
            "id": w,
            "title": f"Widget {w}",
            "items": [
                {"id": i, "label": f"Widget {w} item {i}", "value": (w * 31 + i * 17) % 1000}
                for i in range(1, N_ITEMS + 1)
            ],
        }
        for w in range(1, count + 1)
    ]


TODOS = make_todos()
WIDGETS = make_widgets()


def done_count() -> int:
    return sum(1 for t in TODOS.values() if t["done"])
