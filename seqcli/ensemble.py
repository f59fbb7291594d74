"""Ensembles: several models searched as one, averaging their log-probabilities at every step."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from torch import Tensor, nn

from seqcli.errors import RunDirError
from seqcli.model.decoder import DecoderState, Memory
from seqcli.model.seq2seq import Seq2Seq
from seqcli.translate import Translator


@dataclass
class EnsembleState:
    """One decoder state per model, each with the same N rows."""

    states: list[DecoderState]

    def select(self, index: Tensor) -> EnsembleState:
        return EnsembleState([state.select(index) for state in self.states])


@dataclass
class EnsembleMemory:
    """One encoder memory per model, each with the same N rows."""

    memories: list[Memory]

    def select(self, index: Tensor) -> EnsembleMemory:
        return EnsembleMemory([memory.select(index) for memory in self.memories])


class Ensemble(nn.Module):
    """Models sharing the source and target vocabularies, with Seq2Seq's encode and step."""

    def __init__(self, models: list[Seq2Seq]):
        super().__init__()
        self.members = nn.ModuleList(models)

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[EnsembleState, EnsembleMemory]:
        """src (B, S), src_lengths (B,) -> each model's first decoder state and memory."""
        encoded = [cast(Seq2Seq, model).encode(src, src_lengths) for model in self.members]
        return EnsembleState([s for s, _ in encoded]), EnsembleMemory([m for _, m in encoded])

    def step(
        self, prev_tokens: Tensor, state: EnsembleState, memory: EnsembleMemory
    ) -> tuple[Tensor, EnsembleState]:
        """prev_tokens (N,) -> the mean of the models' log-probabilities, renormalized (N, V).

        The mean of log-probabilities is the log of the geometric mean of the distributions;
        log_softmax makes it a distribution again, so scores stay comparable across steps.
        """
        steps = [
            cast(Seq2Seq, model).step(prev_tokens, s, m)
            for model, s, m in zip(self.members, state.states, memory.memories, strict=True)
        ]
        mean = torch.stack([log_probs for log_probs, _ in steps]).mean(dim=0)  # (N, V)
        return torch.log_softmax(mean, dim=-1), EnsembleState([s for _, s in steps])


def ensemble_translator(
    run_dirs: list[Path], overrides: dict[str, object], device: torch.device
) -> Translator:
    """A Translator over the best weights of several runs; decode settings from the first run.

    The runs must share both tokenizers (the same SentencePiece bytes): the source is encoded
    once for all models, and their log-probabilities are averaged token id by token id.
    """
    translators = [Translator.from_run_dir(run_dir, overrides, device) for run_dir in run_dirs]
    first = translators[0]
    for run_dir, other in zip(run_dirs[1:], translators[1:], strict=True):
        for side in ("src", "tgt"):
            if getattr(other, f"{side}_tokenizer").sha256 != getattr(first, f"{side}_tokenizer").sha256:
                raise RunDirError(
                    f"{run_dir}: its {side} tokenizer differs from {run_dirs[0]}'s; "
                    "an ensemble needs the same tokenizers"
                )
    ensemble = Ensemble([t.model for t in translators]).eval()
    model = cast(Seq2Seq, ensemble)  # the Translator only calls encode, step and eval
    return Translator(model, first.src_tokenizer, first.tgt_tokenizer, first.decode, device)
