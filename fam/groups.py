"""Packing identity groups into memory-bounded batches.

A group is all views of one person: their real images, or for a person with a single image,
that image plus N augmented views. By default every batch holds one group, so a person's
results never depend on who else is protected: batched kernels round differently for other
batch shapes and contents, and 50 Adam steps amplify that to visible pixel differences. With
``pack=True`` small groups are packed together (first-fit decreasing, in a deterministic
order) so that many of them share one pass through the models. A group larger
than ``max_views`` is split into near-equal consecutive chunks optimised one after another;
each later chunk sees the final identity embeddings of the earlier chunks as fixed anchors in
the consistency term, i.e. it minimises eq. 3 over every pair that involves one of its views
(block-coordinate descent on the whole group's eq. 3), so all chunks converge on one identity.

The plan depends only on the view counts, never on what is already finished, so a resumed run
recomputes exactly the batches an uninterrupted run would (byte-identical outputs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Slot:
    group: int  # index into the list of groups
    view: int  # index of the view within its group


@dataclass(frozen=True)
class PlannedBatch:
    slots: tuple[Slot, ...]
    chunk: int = 0  # > 0: a later chunk of a large group (anchors from chunks 0..chunk-1 apply)

    @property
    def groups(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys(s.group for s in self.slots))


def plan_batches(view_counts: Sequence[int], max_views: int, *, pack: bool = False) -> list[PlannedBatch]:
    if max_views < 2:
        raise ValueError("groups.max_batch_views must be at least 2 (the consistency term needs pairs)")
    if any(n < 1 for n in view_counts):
        raise ValueError("every group needs at least one view")
    plans: list[PlannedBatch] = []
    bins: list[list[int]] = []  # groups per bin
    room: list[int] = []
    for g in sorted(range(len(view_counts)), key=lambda g: (-view_counts[g], g)):
        n = view_counts[g]
        if n > max_views:
            n_chunks = math.ceil(n / max_views)
            bounds = [round(i * n / n_chunks) for i in range(n_chunks + 1)]
            for c in range(n_chunks):
                plans.append(
                    PlannedBatch(tuple(Slot(g, v) for v in range(bounds[c], bounds[c + 1])), chunk=c)
                )
            continue
        for b, free in enumerate(room):
            if pack and n <= free:
                bins[b].append(g)
                room[b] -= n
                break
        else:
            bins.append([g])
            room.append(max_views - n)
    for members in bins:
        plans.append(PlannedBatch(tuple(Slot(g, v) for g in members for v in range(view_counts[g]))))
    return plans
