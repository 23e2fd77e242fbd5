"""Batched embedding extraction and chunked, vectorised similarity scoring.

A similarity function is anything with the signature of
:meth:`fam.interfaces.FaceRecognizer.similarity`: ``(a [Na, D], b [Nb, D]) -> [Na, Nb]``,
higher = more alike. Full score matrices of thousands of images never exist at once: rows are
processed in blocks of ``chunk`` and only the requested scores are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from fam.interfaces import FaceRecognizer

SimilarityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity ``[Na, Nb]`` of the rows of ``a [Na, D]`` and ``b [Nb, D]``."""
    a = torch.nn.functional.normalize(a.float(), dim=1)
    b = torch.nn.functional.normalize(b.float(), dim=1)
    # float32 rounding puts identical rows at 1.0000001; a score is a cosine, in [-1, 1]
    return (a @ b.T).clamp(-1.0, 1.0)


def negative_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``-||a_i - b_j||`` ``[Na, Nb]`` (dlib's native metric, sign flipped so higher = closer)."""
    return -torch.cdist(a.float(), b.float())


@torch.no_grad()
def embed_batches(
    recognizer: FaceRecognizer,
    batches: Iterable[torch.Tensor],  # each [B, 3, R, R] in [-1, 1]
) -> torch.Tensor:
    """Embeddings ``[N, D]`` (float32, CPU) of all batches, in order."""
    out = [recognizer.embed(batch).float().cpu() for batch in batches]
    if not out:
        return torch.zeros(0, recognizer.embedding_dim)
    return torch.cat(out)


@torch.no_grad()
def similarity_chunked(
    a: torch.Tensor,  # [Na, D]
    b: torch.Tensor,  # [Nb, D]
    similarity: SimilarityFn,
    chunk: int = 2048,  # rows of ``a`` per block
) -> torch.Tensor:
    """The full matrix ``[Na, Nb]``, computed block by block (equals ``similarity(a, b)``)."""
    return torch.cat([similarity(a[i : i + chunk], b) for i in range(0, len(a), chunk)])


@torch.no_grad()
def paired_scores(
    a: torch.Tensor,  # [N, D]
    b: torch.Tensor,  # [N, D], row i pairs with row i of ``a``
    similarity: SimilarityFn,
    chunk: int = 256,
) -> np.ndarray:
    """``[N]`` scores of (a_i, b_i): the diagonal of each small block."""
    if a.shape != b.shape:
        raise ValueError(f"paired_scores needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    parts = [similarity(a[i : i + chunk], b[i : i + chunk]).diagonal() for i in range(0, len(a), chunk)]
    return torch.cat(parts).numpy() if parts else np.zeros(0, dtype=np.float32)


@torch.no_grad()
def labelled_pair_scores(
    a: torch.Tensor,  # [Na, D]
    labels_a: Sequence[str],  # person of each row of ``a``
    similarity: SimilarityFn,
    b: torch.Tensor | None = None,  # [Nb, D]; None = pairs within ``a`` (i < j)
    labels_b: Sequence[str] | None = None,
    exclude_same_index: bool = False,  # cross sets only: drop (i, i), i.e. the same source image
    chunk: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of all pairs, split into (same label, different label), as float32 arrays.

    Within one set every unordered pair i < j is scored once. Across two sets every (i, j) is
    scored; with ``exclude_same_index`` the pairs built from the same input image are dropped
    (both sets must then be index-aligned).
    """
    within = b is None
    if within:
        b, labels_b = a, labels_a
    assert b is not None and labels_b is not None
    if len(labels_a) != len(a) or len(labels_b) != len(b):
        raise ValueError("one label per embedding row is required")
    # Integer codes make the label comparison a vectorised broadcast.
    names = {name: i for i, name in enumerate(sorted(set(labels_a) | set(labels_b)))}
    code_a = torch.tensor([names[x] for x in labels_a])
    code_b = torch.tensor([names[x] for x in labels_b])
    idx_b = torch.arange(len(b))
    same_parts: list[torch.Tensor] = []
    diff_parts: list[torch.Tensor] = []
    for start in range(0, len(a), chunk):
        block = similarity(a[start : start + chunk], b)  # [c, Nb]
        rows = torch.arange(start, start + len(block)).unsqueeze(1)
        keep = torch.ones_like(block, dtype=torch.bool)
        if within:
            keep = idx_b.unsqueeze(0) > rows
        elif exclude_same_index:
            keep = idx_b.unsqueeze(0) != rows
        same = code_a[start : start + len(block)].unsqueeze(1) == code_b.unsqueeze(0)
        same_parts.append(block[keep & same])
        diff_parts.append(block[keep & ~same])
    cat = lambda parts: torch.cat(parts).numpy() if parts else np.zeros(0, dtype=np.float32)  # noqa: E731
    return cat(same_parts), cat(diff_parts)
