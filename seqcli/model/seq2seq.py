"""The encoder-decoder model, built from a ModelConfig and two vocabulary sizes."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqcli.config import ModelConfig
from seqcli.errors import ConfigError
from seqcli.model.decoder import Bridge, Decoder, DecoderState, Memory, Readout
from seqcli.model.encoder import Encoder
from seqcli.model.parts import REFERENCE, Parts
from seqcli.vocab import PAD_ID


class Seq2Seq(nn.Module):
    """Encoder, bridge and attentional decoder."""

    def __init__(
        self, config: ModelConfig, src_vocab_size: int, tgt_vocab_size: int, parts: Parts = REFERENCE
    ):
        """parts: the cells, attentions and dropout to build with (`seqcli.kernels` chooses)."""
        super().__init__()
        self.config = config
        self.encoder = Encoder.from_config(config, src_vocab_size, parts)
        self.bridge = Bridge(
            config.bridge,
            config.hidden_size,
            config.hidden_size,
            config.decoder_layers,
            self.encoder.cell.n_states,
        )
        self.decoder = Decoder.from_config(
            config, tgt_vocab_size, config.attention, config.input_feeding, parts
        )
        self._initialize()
        if config.shared_embeddings:  # one joint vocabulary: one matrix for both sides
            if src_vocab_size != tgt_vocab_size:
                raise ConfigError(
                    f"model.shared_embeddings: needs one joint vocabulary ({src_vocab_size} source "
                    f"and {tgt_vocab_size} target pieces)"
                )
            self.encoder.embedding.weight = self.decoder.embedding.weight
        if config.tied_embeddings:
            self.decoder.tie_output_to_embedding()

    def _initialize(self) -> None:
        """Small normal embeddings (pad row zero), Xavier linear layers, RNNs per model.rnn_init."""
        for embedding in (self.encoder.embedding, self.decoder.embedding):
            nn.init.normal_(embedding.weight, std=0.1)
            with torch.no_grad():
                embedding.weight[PAD_ID].zero_()
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for part in (self.encoder, self.decoder):
            part.cell.initialize(part.rnn, self.config.rnn_init, self.config.forget_bias)

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[DecoderState, Memory]:
        """src (B, S), src_lengths (B,) -> the decoder's first state and its memory."""
        encoded = self.encoder(src, src_lengths)
        memory = self.decoder.make_memory(encoded)
        return self.decoder.initial_state(self.bridge(encoded.final), memory), memory

    def forward(
        self,
        src: Tensor,
        src_lengths: Tensor,
        tgt_in: Tensor,
        use_gold: Tensor | None = None,
        real: Tensor | None = None,
    ) -> Readout:
        """Training logits (B, T, V) (hard attention: the mixture's log-probabilities, and its parts).

        use_gold (B, T): scheduled sampling's coin flips. real (B, T) bool, the target
        positions before padding: when given, only they get logits, (N, V) in row order, and
        the decoder skips work on padding where it can."""
        state, memory = self.encode(src, src_lengths)
        return self.decoder.teacher_forced(tgt_in, state, memory, use_gold, real)

    def step(self, prev_tokens: Tensor, state: DecoderState, memory: Memory) -> tuple[Tensor, DecoderState]:
        """Search step: prev_tokens (N,) -> log-probabilities (N, V) and the next state."""
        logits, state = self.decoder.step(prev_tokens, state, memory)
        return torch.log_softmax(logits.float(), dim=-1), state

    def count_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
