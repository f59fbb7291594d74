"""Greedy and beam search over a one-token decoder step, batched over sentences."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, Self, overload

import torch
from torch import Tensor

# Shapes: B sentences, K beam, V vocabulary, n sentences still being decoded, N = n * K rows
# currently decoded, t steps taken so far.


class Selectable(Protocol):
    """Per-row decoder data (state or encoder memory) whose rows can be kept or reordered."""

    def select(self, index: Tensor) -> Self:
        """Rows `index` (N',) long of self, in that order; a row may appear several times."""
        ...


class StepFunction(Protocol):
    """One decoder step for N rows at once."""

    def __call__(self, prev_tokens: Tensor, state: Any, memory: Any) -> tuple[Tensor, Any]:
        """prev_tokens (N,) long, state and memory with N rows -> (log_probs (N, V), state)."""
        ...


@dataclass(frozen=True)
class Hypothesis:
    """One finished output of a sentence."""

    tokens: list[int]  # without BOS and EOS
    score: float  # sum of token log-probs, EOS included when it was generated
    normalized_score: float  # score / length_penalty(steps: len(tokens), + 1 if EOS ended it)


@overload
def length_penalty(length: int, alpha: float) -> float: ...
@overload
def length_penalty(length: Tensor, alpha: float) -> Tensor: ...
def length_penalty(length: int | Tensor, alpha: float) -> float | Tensor:
    """GNMT (Wu et al. 2016): ((5 + length) / 6) ** alpha; alpha = 0 gives 1."""
    return ((5 + length) / 6) ** alpha


@dataclass(frozen=True)
class _Expansion:
    """Each slot's next hypothesis: cumulative score, the slot it extends and its new token."""

    scores: Tensor  # (n, K) float, -inf for a dead slot
    parents: Tensor  # (n, K) long in [0, K)
    tokens: Tensor  # (n, K) long


# (scores (n, K), log_probs (n, K, V), open_slots (n, 1)) -> the next hypotheses
Expand = Callable[[Tensor, Tensor, Tensor], _Expansion]


def _expand_greedy(scores: Tensor, log_probs: Tensor, open_slots: Tensor) -> _Expansion:
    """Extend each sentence's single hypothesis (K = 1) by its most probable token."""
    best, tokens = log_probs.max(dim=2)  # (n, 1)
    return _Expansion(scores + best, torch.zeros_like(tokens), tokens)


def _expand_beam(scores: Tensor, log_probs: Tensor, open_slots: Tensor) -> _Expansion:
    """Shrinking beam: a sentence keeps its best (K - finished so far) extensions."""
    n, k, v = log_probs.shape
    candidates = (scores.unsqueeze(2) + log_probs).reshape(n, k * v)  # (n, K*V)
    top_scores, index = candidates.topk(k, dim=1)  # (n, K), best first
    # Each finished hypothesis retired a slot; counting them, not finite scores, lets a
    # slot left -inf by a tiny vocabulary at the first step fill up again later.
    rank = torch.arange(k, device=scores.device)  # (K,)
    top_scores = top_scores.masked_fill(rank >= open_slots, -math.inf)
    return _Expansion(top_scores, index // v, index % v)


class _BeamBook:
    """Finished hypotheses per sentence, and the rules that say when a sentence is done.

    The bookkeeping is done with tensors over all active sentences at once, on the host (the
    one transfer per step); Python only touches the hypotheses that finish, to build them.
    """

    def __init__(self, limits: Tensor, beam_size: int, n_best: int, alpha: float):
        self.limits = limits.cpu()  # (B,) per sentence: the most decoder steps, EOS included
        self.beam_size, self.n_best, self.alpha = beam_size, n_best, alpha
        self.finished: list[list[Hypothesis]] = [[] for _ in range(len(limits))]  # in order found
        # The n_best best normalized scores found so far per sentence, -inf where fewer.
        self.top = torch.full((len(limits), n_best), -math.inf, dtype=torch.float64)  # (B, n_best)
        self.last_checks: tuple[Tensor, Tensor, Tensor] | None = None

    def update(self, sent_ids: Tensor, scores: Tensor, is_eos: Tensor, history: Tensor, t: int) -> Tensor:
        """Store what step t finished; return the positions (n',) of the sentences not yet done.

        sent_ids (n,) long on the host: the original index of each active sentence; scores
        (n, K); is_eos (n, K) bool, only for live candidates; history (N, t) tokens of each slot.
        """
        host = torch.stack((scores, is_eos.to(scores.dtype))).cpu()  # (2, n, K): the one sync
        host_scores, host_eos = host[0].double(), host[1].bool()  # (n, K)
        limits = self.limits[sent_ids]  # (n,)
        at_limit = limits <= t  # (n,)
        is_live = host_scores.isfinite() & ~host_eos  # (n, K)
        # At its limit a sentence's live hypotheses end as they are, without EOS.
        ending = host_eos | (is_live & at_limit.unsqueeze(1))  # (n, K)
        if ending.any():
            self._store(sent_ids, host_scores, ending, host_eos, history, t)
        best_live = host_scores.masked_fill(~is_live, -math.inf).amax(dim=1)  # (n,)
        # Scores only fall (s <= 0). For alpha >= 0 the penalty grows with length, so a live
        # hypothesis ends at best at s / penalty(limit); for alpha < 0 at s / penalty(t).
        bound_length = limits if self.alpha >= 0 else torch.full_like(limits, t)
        best_reachable = best_live / length_penalty(bound_length.double(), self.alpha)  # (n,)
        nth_best = self.top[sent_ids, -1]  # (n,), -inf until n_best are found
        no_live, unbeatable = best_live == -math.inf, best_reachable <= nth_best
        self.last_checks = (at_limit, no_live, unbeatable)  # (n,) each: why a sentence is done
        done = at_limit | no_live | unbeatable
        return (~done).nonzero().squeeze(1)

    def _store(
        self, sent_ids: Tensor, scores: Tensor, ending: Tensor, is_eos: Tensor, history: Tensor, t: int
    ) -> None:
        """Turn the slots marked in `ending` (n, K) into hypotheses, best rank first."""
        # Both endings took t steps (t - 1 tokens and EOS, or t tokens cut at the limit),
        # so both are normalized by the penalty for length t.
        normalized = scores / length_penalty(t, self.alpha)  # (n, K)
        candidates = torch.cat([self.top[sent_ids], normalized.masked_fill(~ending, -math.inf)], dim=1)
        self.top[sent_ids] = candidates.topk(self.n_best, dim=1).values
        positions = ending.nonzero()  # (finished, 2) sentence-major, so earlier-found stays first
        rows = positions[:, 0] * self.beam_size + positions[:, 1]
        token_rows = history[rows.to(history.device)].tolist()  # (finished, t)
        owners = sent_ids[positions[:, 0]].tolist()
        for (i, k), owner, tokens in zip(positions.tolist(), owners, token_rows, strict=True):
            kept = tokens[:-1] if is_eos[i, k] else tokens
            self.finished[owner].append(Hypothesis(kept, float(scores[i, k]), float(normalized[i, k])))

    def results(self) -> list[list[Hypothesis]]:
        """Per sentence, its n best finished hypotheses, best normalized score first."""
        # sorted() is stable, also with reverse=True: among ties the earlier-found stays first.
        return [
            sorted(found, key=lambda h: h.normalized_score, reverse=True)[: self.n_best]
            for found in self.finished
        ]


def _decode(
    step: StepFunction,
    state: Selectable,
    memory: Selectable,
    bos: int,
    eos: int,
    expand: Expand,
    book: _BeamBook,
    device: torch.device,
    trace: SearchTrace | None = None,
) -> list[list[Hypothesis]]:
    """The loop shared by greedy and beam search: step, expand, book, drop done sentences."""
    k = book.beam_size
    sent_ids = torch.arange(len(book.limits))  # (n,) on the host: original index of each active sentence
    slots = torch.arange(k, device=device)  # (K,)
    rows = torch.arange(len(sent_ids), device=device).repeat_interleave(k)  # (B*K,)
    state, memory = state.select(rows), memory.select(rows)
    # Only slot 0 starts live, so the first step does not yield K copies of each candidate.
    scores = torch.full((len(sent_ids), k), -math.inf, device=device)  # (B, K)
    scores[:, 0] = 0.0
    open_slots = torch.full((len(sent_ids), 1), k, device=device)  # (B, 1): K - finished
    history = torch.zeros((len(rows), 0), dtype=torch.long, device=device)  # (N, 0)
    prev_tokens = torch.full((len(rows),), bos, dtype=torch.long, device=device)  # (N,)
    for t in range(1, int(book.limits.max()) + 1 if len(book.limits) else 1):
        n = len(sent_ids)
        log_probs, state = step(prev_tokens, state, memory)  # (N, V)
        grown = expand(scores, log_probs.reshape(n, k, -1), open_slots)  # (n, K) each
        rows = (torch.arange(n, device=device).unsqueeze(1) * k + grown.parents).view(-1)  # (N,)
        history = torch.cat((history[rows], grown.tokens.view(-1, 1)), dim=1)  # (N, t)
        is_eos = (grown.tokens == eos) & grown.scores.isfinite()  # (n, K)
        keep = book.update(sent_ids, grown.scores, is_eos, history, t)  # (n',) on the host
        if trace is not None:
            trace.record(t, scores, log_probs, grown, is_eos, book, state)
        if len(keep) == 0:
            break
        scores = grown.scores.masked_fill(is_eos, -math.inf)  # an EOS retires its slot
        open_slots = open_slots - is_eos.sum(dim=1, keepdim=True)  # (n, 1)
        if len(keep) < n:
            kept = keep.to(device)  # (n',)
            kept_rows = (kept.unsqueeze(1) * k + slots).view(-1)  # (N',)
            rows, history = rows[kept_rows], history[kept_rows]
            scores, open_slots = scores[kept], open_slots[kept]
            memory = memory.select(kept_rows)  # memory changes only with the set of sentences
            sent_ids = sent_ids[keep]
        if k > 1 or len(keep) < n:  # greedy never reorders, so its rows only need selecting
            state = state.select(rows)
        prev_tokens = history[:, -1]  # (N,)
    return book.results()


def _make_book(max_lengths: Tensor, beam_size: int, n_best: int, alpha: float) -> _BeamBook:
    """Check the search arguments and start an empty book."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be between 1 and beam_size ({beam_size}), got {n_best}")
    if max_lengths.dim() != 1:
        raise ValueError(f"max_lengths must have shape (B,), got {tuple(max_lengths.shape)}")
    if len(max_lengths) and int(max_lengths.min()) < 1:
        raise ValueError(f"max_lengths must all be at least 1, got {int(max_lengths.min())}")
    return _BeamBook(max_lengths, beam_size, n_best, alpha)


def greedy_search(
    step: StepFunction,
    state: Selectable,
    memory: Selectable,
    bos: int,
    eos: int,
    max_lengths: Tensor,
    trace: SearchTrace | None = None,
) -> list[list[Hypothesis]]:
    """Per sentence, a list with the one hypothesis made of its most probable next tokens.

    state and memory have B rows; max_lengths (B,) long, on the model's device, is the most
    decoder steps per sentence, EOS included: a hypothesis that ends by EOS at step t has
    t - 1 tokens, and one still going after max_lengths[b] steps ends there without EOS.
    trace: filled with what the search did, step by step (a batch of one sentence only).
    """
    book = _make_book(max_lengths, beam_size=1, n_best=1, alpha=0.0)
    _check_trace(trace, max_lengths)
    return _decode(step, state, memory, bos, eos, _expand_greedy, book, max_lengths.device, trace)


def beam_search(
    step: StepFunction,
    state: Selectable,
    memory: Selectable,
    bos: int,
    eos: int,
    max_lengths: Tensor,
    beam_size: int,
    n_best: int = 1,
    alpha: float = 0.0,
    trace: SearchTrace | None = None,
) -> list[list[Hypothesis]]:
    """Per sentence, up to n_best finished hypotheses, best normalized score first.

    Arguments as for greedy_search; alpha is the length penalty's exponent. Shrinking beam:
    each step a sentence keeps its best (K - finished so far) extensions by raw score; one
    ending in EOS is finished and retires its slot. A sentence stops with no live slot, at
    its max length, or once it has n_best finished hypotheses that no live one can beat even
    in the best case (see _BeamBook._is_done). Raises ValueError unless 1 <= n_best <= K.
    """
    book = _make_book(max_lengths, beam_size, n_best, alpha)
    _check_trace(trace, max_lengths)
    return _decode(step, state, memory, bos, eos, _expand_beam, book, max_lengths.device, trace)


@dataclass(frozen=True)
class TraceNode:
    """One candidate of one search step: a hypothesis extended by one token.

    status: "kept" (it holds a beam slot for the next step), "finished" (kept, and its token
    is EOS), "ended" (kept, but the length limit ended it without EOS) or "pruned" (among
    its parent's best tokens, but outranked by other candidates).
    """

    step: int  # 1-based: the node has `step` tokens, BOS not counted
    slot: int | None  # its beam slot when kept, finished or ended; None when pruned
    parent: int | None  # the slot it extends at step - 1; None at step 1 (the empty prefix)
    token: int
    log_prob: float  # log P(token | parent's prefix, source)
    score: float  # the parent's score + log_prob
    normalized_score: float  # score / length_penalty(step): its rank if it ended here
    status: str


class SearchTrace:
    """What one sentence's search did: at every step, the best `alternatives` (or beam size,
    if larger) tokens each live hypothesis proposed, which of them were kept, finished or
    pruned, and at the end why the search stopped. A beam of size K keeps only the K best
    candidates over all its hypotheses, so every kept one is among these. Where the decoder
    state carries attention weights (`state.attention`, (K, S)), each step's are kept too: row k
    is where hypothesis k looked while proposing that step's candidates."""

    def __init__(self, alternatives: int = 3):
        self.alternatives = alternatives
        self.steps: list[list[TraceNode]] = []
        self.stop_reason = ""
        self.alpha = 0.0  # the length penalty the search normalized with (greedy: none)
        self.attention: list[Tensor] = []  # per step (K, S), when the state has attention

    def record(
        self,
        t: int,
        scores: Tensor,
        log_probs: Tensor,
        grown: _Expansion,
        is_eos: Tensor,
        book: _BeamBook,
        state: Any,
    ) -> None:
        """Step t of _decode: scores (1, K) before it, log_probs (K, V), the expansion, its EOS
        marks (1, K), the book after its update, and the decoder state the step returned."""
        weights = getattr(state, "attention", None)
        if weights is not None:
            self.attention.append(weights.float().cpu())
        k, self.alpha = book.beam_size, book.alpha
        parent_scores, new_scores = scores[0].tolist(), grown.scores[0].tolist()
        kept = {
            (parent, token): slot
            for slot, (parent, token, score) in enumerate(
                zip(grown.parents[0].tolist(), grown.tokens[0].tolist(), new_scores, strict=True)
            )
            if math.isfinite(score)
        }
        assert book.last_checks is not None
        at_limit, no_live, unbeatable = (bool(check[0]) for check in book.last_checks)
        best = log_probs.float().topk(min(max(k, self.alternatives), log_probs.size(1)), dim=1)
        penalty = length_penalty(t, book.alpha)
        nodes: list[TraceNode] = []
        for parent in range(k):
            if not math.isfinite(parent_scores[parent]):
                continue  # a dead or retired slot proposes nothing
            for log_prob, token in zip(
                best.values[parent].tolist(), best.indices[parent].tolist(), strict=True
            ):
                if not math.isfinite(log_prob):
                    continue  # an impossible token (a tiny vocabulary) is no candidate
                slot = kept.get((parent, token))
                score = parent_scores[parent] + log_prob
                if slot is None:
                    status = "pruned"
                else:
                    score = new_scores[slot]  # the search's own sum, bit for bit
                    status = "finished" if bool(is_eos[0, slot]) else "ended" if at_limit else "kept"
                nodes.append(
                    TraceNode(
                        t, slot, parent if t > 1 else None, token, log_prob, score, score / penalty, status
                    )
                )
        self.steps.append(nodes)
        self.stop_reason = _why_stopped(t, at_limit, no_live, unbeatable, book.n_best) or self.stop_reason

    def path(self, node: TraceNode) -> list[TraceNode]:
        """The nodes of node's hypothesis, from step 1 to node."""
        nodes = [node]
        for earlier in range(node.step - 1, 0, -1):
            parent = nodes[0].parent
            nodes.insert(
                0, next(n for n in self.steps[earlier - 1] if n.slot == parent and n.status == "kept")
            )
        return nodes

    def attention_along(self, nodes: list[TraceNode]) -> Tensor | None:
        """(len(nodes), S): the weights each node of a path was proposed with; None without attention."""
        if len(self.attention) < len(nodes):
            return None
        rows = [self.attention[t][node.parent or 0] for t, node in enumerate(nodes)]
        return torch.stack(rows)


def _why_stopped(t: int, at_limit: bool, no_live: bool, unbeatable: bool, n_best: int) -> str:
    """Why a search ended at step t, in words ("" while it goes on)."""
    if at_limit:
        return f"the length limit: {t} steps"
    if no_live:
        return "no live hypothesis left: every beam slot has finished"
    if unbeatable:
        return (
            f"the {n_best} best finished hypotheses cannot be beaten: no live hypothesis "
            "could score higher, even at its best reachable length"
        )
    return ""


def _check_trace(trace: SearchTrace | None, max_lengths: Tensor) -> None:
    if trace is not None and len(max_lengths) != 1:
        raise ValueError(f"a search trace follows one sentence, got a batch of {len(max_lengths)}")
