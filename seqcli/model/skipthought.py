"""Skip-thought vectors (Kiros et al. 2015): one encoder, two decoders for the neighbours.

The encoder reads sentence i; its final top-layer state is the sentence vector. Two
decoders, one for sentence i - 1 and one for sentence i + 1, start from that vector (through
a bridge) and are fed it at every step, as in the classic fixed-context encoder-decoder
(attention `none`, no input feeding). The loss is the sum of both decoders' cross-entropies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from seqcli.config import ModelConfig
from seqcli.model.decoder import Bridge, Decoder
from seqcli.model.encoder import Encoder, EncoderOutput
from seqcli.model.parts import REFERENCE, Parts
from seqcli.vocab import PAD_ID


@dataclass
class SkipThoughtOutput:
    """Training logits of the two decoders: previous (B, Tp, V) and next (B, Tn, V)."""

    previous: Tensor
    next: Tensor


class SkipThought(nn.Module):
    """Encoder and the previous-sentence and next-sentence decoders, over one vocabulary."""

    def __init__(self, config: ModelConfig, vocab_size: int, parts: Parts = REFERENCE):
        super().__init__()
        self.config = config
        self.encoder = Encoder.from_config(config, vocab_size, parts)
        n_states = self.encoder.cell.n_states
        self.bridges = nn.ModuleList(
            Bridge(config.bridge, config.hidden_size, config.hidden_size, config.decoder_layers, n_states)
            for _ in range(2)
        )
        self.decoders = nn.ModuleList(
            Decoder.from_config(config, vocab_size, "none", False, parts) for _ in range(2)
        )
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.1)
                with torch.no_grad():
                    module.weight[PAD_ID].zero_()
        for part in (self.encoder, *self.decoders):
            part.cell.initialize(part.rnn, config.rnn_init, config.forget_bias)

    def embed(self, src: Tensor, src_lengths: Tensor) -> Tensor:
        """src (B, S), src_lengths (B,) -> sentence vectors (B, H)."""
        return self.encoder(src, src_lengths).final[0][-1]

    def _decode(self, index: int, encoded: EncoderOutput, tgt_in: Tensor) -> Tensor:
        """Decoder 0 (previous sentence) or 1 (next sentence): tgt_in (B, T) -> logits (B, T, V)."""
        decoder, bridge = cast(Decoder, self.decoders[index]), cast(Bridge, self.bridges[index])
        memory = decoder.make_memory(encoded)
        state = decoder.initial_state(bridge(encoded.final), memory)
        return decoder.teacher_forced(tgt_in, state, memory).logits  # (B, T, V)

    def forward(
        self, src: Tensor, src_lengths: Tensor, previous_in: Tensor, next_in: Tensor
    ) -> SkipThoughtOutput:
        """src (B, S); previous_in (B, Tp) and next_in (B, Tn) start with BOS -> both decoders' logits."""
        encoded = self.encoder(src, src_lengths)
        return SkipThoughtOutput(self._decode(0, encoded, previous_in), self._decode(1, encoded, next_in))

    def count_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
