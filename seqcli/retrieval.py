"""Next-sentence retrieval: rank a sentence's true successor among candidates by cosine similarity."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RetrievalResult:
    """Ranks of the true successor (1 = first) over all queries, and what chance would give."""

    queries: int
    candidates: int  # per query: the successor and candidates - 1 other sentences
    mean_rank: float
    recall_at_1: float
    mean_reciprocal_rank: float

    @property
    def chance_mean_rank(self) -> float:
        return (self.candidates + 1) / 2

    @property
    def chance_recall_at_1(self) -> float:
        return 1 / self.candidates


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def next_sentence_ranks(
    vectors: np.ndarray, document_sizes: list[int], n_candidates: int, seed: int = 0
) -> np.ndarray:
    """For each sentence with a successor, the rank of that successor among n_candidates.

    vectors (N, D): the sentences of consecutive documents, in order; document_sizes says
    how many rows each document has. The other n_candidates - 1 candidates are drawn from
    the same document (so topic alone does not give the answer), never the query itself;
    documents with fewer than n_candidates + 1 sentences are skipped. Ties count against
    the successor. -> ranks (Q,) int, 1 = the successor was the most similar.
    """
    unit = _unit(vectors.astype(np.float64))
    rng = random.Random(seed)
    ranks = []
    start = 0
    for size in document_sizes:
        if size > n_candidates:
            for query in range(start, start + size - 1):
                successor = query + 1
                drawn = rng.sample(range(start, start + size), n_candidates + 1)
                negatives = [i for i in drawn if i not in (query, successor)][: n_candidates - 1]
                similarity = unit[[successor, *negatives]] @ unit[query]  # (n_candidates,)
                ranks.append(1 + int((similarity[1:] >= similarity[0]).sum()))
        start += size
    return np.array(ranks, dtype=np.int64)


def summarize(ranks: np.ndarray, n_candidates: int) -> RetrievalResult:
    return RetrievalResult(
        queries=len(ranks),
        candidates=n_candidates,
        mean_rank=float(ranks.mean()) if len(ranks) else float("nan"),
        recall_at_1=float((ranks == 1).mean()) if len(ranks) else float("nan"),
        mean_reciprocal_rank=float((1.0 / ranks).mean()) if len(ranks) else float("nan"),
    )
