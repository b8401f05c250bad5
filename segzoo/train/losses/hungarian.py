"""The linear assignment problem (Hungarian matching), for mask classification's query-to-segment matching.

Kuhn-Munkres with potentials and shortest augmenting paths, O(rows^2 * columns): a few segments against a hundred
queries per image takes well under a millisecond, so segzoo needs no SciPy for it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["linear_sum_assignment"]


def linear_sum_assignment(cost) -> tuple[np.ndarray, np.ndarray]:
    """The rows and columns of a minimum-cost matching of a ``(rows, columns)`` cost matrix: every row matched to a
    distinct column when there are fewer rows, else every column to a distinct row. Returns ``(row_indices,
    column_indices)`` sorted by row, as SciPy's function of the same name does."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"the cost matrix must be 2-D, got shape {cost.shape}")
    if not np.isfinite(cost).all():
        raise ValueError("the cost matrix holds NaN or infinite values")
    if cost.shape[0] > cost.shape[1]:
        columns, rows = linear_sum_assignment(cost.T)
        order = np.argsort(rows)
        return rows[order], columns[order]
    n, m = cost.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)  # potentials (index 0: the virtual start)
    owner = np.zeros(m + 1, dtype=np.int64)  # owner[j]: the row (1-based) matched to column j, 0 for none
    way = np.zeros(m + 1, dtype=np.int64)
    for row in range(1, n + 1):
        owner[0], column = row, 0
        shortest = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:  # grow the shortest-path tree until it reaches a free column
            used[column] = True
            current = owner[column]
            free = np.flatnonzero(~used[1:]) + 1
            reduced = cost[current - 1, free - 1] - u[current] - v[free]
            better = reduced < shortest[free]
            shortest[free[better]] = reduced[better]
            way[free[better]] = column
            nearest = free[np.argmin(shortest[free])]
            delta = shortest[nearest]
            u[owner[used]] += delta
            v[used] -= delta
            shortest[~used] -= delta
            column = nearest
            if owner[column] == 0:
                break
        while column:  # augment along the path
            previous = way[column]
            owner[column] = owner[previous]
            column = previous
    matched = np.flatnonzero(owner[1:]) + 1
    rows = owner[matched] - 1
    order = np.argsort(rows)
    return rows[order], (matched - 1)[order]
