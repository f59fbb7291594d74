"""What the explorer page shows, as JSON: a search step by step, and a target scored two ways.

A search trace (`trace_line`) is the real beam search of seqcli translate, run over one line
with a SearchTrace attached: its finished hypotheses are exactly what POST /translate returns.
Scoring (`score_pair`) runs the decoder over a reference twice: teacher-forced, every step
reading the gold prefix (how the model is trained), and free running, every step reading the
model's own previous token (how it is used). Where the two first part is exposure bias at work.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from seqcli.alignment import forced_attention
from seqcli.config import DecodeConfig
from seqcli.search import SearchTrace, TraceNode
from seqcli.translate import Translator
from seqcli.vocab import BOS_ID, EOS_ID

EOS_PIECE = "</s>"


def pieces(translator: Translator, ids: list[int], side: str = "tgt") -> list[str]:
    """Token ids as pieces; EOS spelled </s>."""
    tokenizer = translator.tgt_tokenizer if side == "tgt" else translator.src_tokenizer
    return [
        EOS_PIECE if i == EOS_ID else piece
        for i, piece in zip(ids, tokenizer.ids_to_pieces(ids), strict=True)
    ]


def trace_line(
    translator: Translator, line: str, decode: DecodeConfig, alternatives: int = 3
) -> dict[str, Any]:
    """One line's search, step by step, with its n-best hypotheses (and their attention).

    The JSON shape is documented in docs/explorer.md: `steps[t - 1]` holds step t's candidate
    nodes; a node's `parent` is the slot it extends at the step before.
    """
    src_ids = translator.src_tokenizer.encode([line])[0]
    result: dict[str, Any] = {
        "source_pieces": pieces(translator, src_ids, "src"),
        "beam_size": decode.beam_size,
        "length_penalty": decode.length_penalty,
        "steps": [],
        "stop_reason": "the source is empty: the output is empty",
        "hypotheses": [],
    }
    if not src_ids:
        return result
    trace = SearchTrace(alternatives)
    found = translator.search_batch([src_ids], decode, trace)[0][: decode.n_best]
    texts = translator.tgt_tokenizer.decode([h.tokens for h in found])
    spelled = _pieces_of(translator, trace)
    result["max_steps"] = int(translator.max_lengths([len(src_ids)])[0])
    result["steps"] = [[_node(node, spelled[node.token]) for node in step] for step in trace.steps]
    result["stop_reason"] = trace.stop_reason
    result["length_penalty"] = trace.alpha  # greedy search normalizes nothing
    ends = _ends(trace)
    result["hypotheses"] = [
        {
            "text": text,
            "pieces": [spelled[token] for token in h.tokens],
            "score": h.score,
            "normalized_score": h.normalized_score,
            # Decoder steps taken, which the length penalty counts: EOS is one, unless the
            # length limit cut the hypothesis.
            "steps": len(h.tokens) if len(h.tokens) == result["max_steps"] else len(h.tokens) + 1,
            "attention": _attention(
                translator, trace, ends.get((tuple(h.tokens), h.score)), src_ids, h.tokens
            ),
        }
        for h, text in zip(found, texts, strict=True)
    ]
    return result


TRACE_DECIMALS = 4  # a beam-10 trace holds thousands of candidates: short numbers keep it small


def _node(node: TraceNode, piece: str) -> dict[str, Any]:
    """A candidate as JSON (its step is its list's position)."""
    return {
        "slot": node.slot,
        "parent": node.parent,
        "token": node.token,
        "piece": piece,
        "log_prob": round(node.log_prob, TRACE_DECIMALS),
        "score": round(node.score, TRACE_DECIMALS),
        "normalized_score": round(node.normalized_score, TRACE_DECIMALS),
        "status": node.status,
    }


def _pieces_of(translator: Translator, trace: SearchTrace) -> dict[int, str]:
    """Every token of the trace as its piece, looked up at once."""
    tokens = sorted({node.token for step in trace.steps for node in step})
    return dict(zip(tokens, pieces(translator, tokens), strict=True))


def _ends(trace: SearchTrace) -> dict[tuple[tuple[int, ...], float], list[TraceNode]]:
    """The path of every hypothesis that ended with EOS, by (tokens without EOS, score)."""
    paths = (trace.path(node) for step in trace.steps for node in step if node.status == "finished")
    return {(tuple(n.token for n in path[:-1]), path[-1].score): path for path in paths}


def _attention(
    translator: Translator,
    trace: SearchTrace,
    path: list[TraceNode] | None,
    src_ids: list[int],
    tokens: list[int],
) -> list[list[float]] | None:
    """The hypothesis's attention rows, EOS last: as the search computed them where it ended by
    EOS, else from a teacher-forced pass; None without attention."""
    if not reads_attention(translator):
        return None
    weights = trace.attention_along(path) if path is not None else None
    if weights is None:  # cut by the length limit: the teacher-forced pass adds the EOS row
        return forced_attention(translator, [src_ids], [tokens])[0].tolist()
    return [row[: len(src_ids)] for row in weights.tolist()]


def reads_attention(translator: Translator) -> bool:
    """Whether the served model has attention weights to show (one model whose decoder attends)."""
    attention = getattr(getattr(translator.model, "decoder", None), "attention", None)
    return bool(getattr(attention, "reads_query", False))


def _forced_log_probs(translator: Translator, src_ids: list[int], tgt_ids: list[int]) -> Tensor:
    """log P(. | tgt_ids[:j], source) at every position j of a teacher-forced pass, the end of
    sentence's position last: (len(tgt_ids) + 1, V), on the host."""
    model, device = translator.model, translator.device
    model.eval()
    src = torch.tensor([src_ids], dtype=torch.long, device=device)
    state, memory = model.encode(src, torch.tensor([len(src_ids)], device=device))
    rows = []
    for token in [BOS_ID, *tgt_ids]:
        log_probs, state = model.step(torch.tensor([token], device=device), state, memory)
        rows.append(log_probs[0].float())
    return torch.stack(rows).cpu()


@torch.inference_mode()
def score_pair(translator: Translator, source: str, target: str) -> dict[str, Any]:
    """The reference scored under teacher forcing and the model's free run beside it.

    teacher_forced[j]: the reference's piece j (then </s>), its log-probability after the gold
    prefix, and the piece the model would have chosen there. free_running[j]: the piece the
    model chose after its own prefix (greedy), its log-probability, and the log-probability the
    reference's piece j would have had at that point. first_divergence: the first step whose
    free-running piece differs from the reference's, or null when they agree throughout.
    """
    src_ids = translator.src_tokenizer.encode([source])[0]
    ref_ids = translator.tgt_tokenizer.encode([target])[0]
    gold = [*ref_ids, EOS_ID]
    result: dict[str, Any] = {
        "source_pieces": pieces(translator, src_ids, "src"),
        "reference_pieces": pieces(translator, gold),
    }
    if not src_ids:
        return {**result, "teacher_forced": [], "free_running": [], "first_divergence": None,
                "teacher_forced_loss": None, "free_running_loss": None}  # fmt: skip
    forced = _forced_log_probs(translator, src_ids, ref_ids)  # (T + 1, V)
    teacher_forced = [
        {"piece": piece, "log_prob": float(forced[j, token]), "model_piece": chosen}
        for j, (token, piece, chosen) in enumerate(
            zip(
                gold,
                result["reference_pieces"],
                pieces(translator, forced.argmax(dim=1).tolist()),
                strict=True,
            )
        )
    ]
    free_running = _free_run(translator, src_ids, gold)
    divergence = next(
        (j for j, step in enumerate(free_running) if j >= len(gold) or step["token"] != gold[j]), None
    )
    if divergence is None and len(free_running) < len(gold):
        divergence = len(free_running)  # cut by the length limit before the reference ended
    return {
        **result,
        "teacher_forced": teacher_forced,
        "teacher_forced_loss": -sum(s["log_prob"] for s in teacher_forced) / len(teacher_forced),
        "free_running": free_running,
        "free_running_loss": _mean_loss(free_running),
        "first_divergence": divergence,
    }


def _free_run(translator: Translator, src_ids: list[int], gold: list[int]) -> list[dict[str, Any]]:
    """Greedy search over one source, and at each of its steps the log-probabilities of its own
    piece and of the reference's (a teacher-forced pass over its own output is the same run)."""
    (best,) = translator.translate_ids([src_ids], replace(translator.decode, beam_size=1, n_best=1))[0]
    limit = int(translator.max_lengths([len(src_ids)])[0])
    own = best.tokens if len(best.tokens) == limit else [*best.tokens, EOS_ID]  # cut, or ended by EOS
    rows = _forced_log_probs(translator, src_ids, best.tokens)[: len(own)]  # (steps, V)
    return [
        {
            "token": token,
            "piece": piece,
            "log_prob": float(rows[j, token]),
            "reference_log_prob": float(rows[j, gold[j]]) if j < len(gold) else None,
        }
        for j, (token, piece) in enumerate(zip(own, pieces(translator, own), strict=True))
    ]


def _mean_loss(steps: list[dict[str, Any]]) -> float | None:
    """Mean -log P(reference piece) over the free-running steps that had a reference piece."""
    known = [s["reference_log_prob"] for s in steps if s["reference_log_prob"] is not None]
    return -sum(known) / len(known) if known and all(math.isfinite(x) for x in known) else None
