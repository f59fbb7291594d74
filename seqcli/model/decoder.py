"""Decoder: one target step with attention and input feeding, and the teacher-forced unroll.

The step, in the order of the textbook (Bahdanau et al. 2015; Luong et al. 2015):
  1. embed the previous target token y_{t-1};
  2. Bahdanau (additive) or the fixed context: attend from the previous state, c_t;
  3. run the RNN on [embedding; c_t if attended before; previous attentional vector if input
     feeding] -> h_t;
  4. Luong (dot, general, hard): attend from the new state h_t, c_t;
  5. combine them into the attentional vector a_t = tanh(W_c [h_t; c_t]);
  6. the output layer turns a_t into logits over the target vocabulary.
`unroll` runs the step over a whole target, feeding gold tokens (teacher forcing) or, where
scheduled sampling says so, the model's own previous prediction. Faster equivalents of the
unroll live in seqcli/fast/, chosen by `seqcli.fast.dispatch`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqcli.config import ModelConfig
from seqcli.model.attention import (
    AdditiveAttention,
    Attended,
    Attention,
    DotAttention,
    FixedContext,
    GeneralAttention,
    Memory,
)
from seqcli.model.cells import RNNState, make_rnn, to_raw, to_state, top_hidden
from seqcli.model.dropout import make_dropout
from seqcli.model.encoder import EncoderOutput
from seqcli.model.hard_attention import HardAttention, PositionChoice
from seqcli.vocab import PAD_ID

__all__ = ["Bridge", "Decoder", "DecoderOutput", "DecoderState", "Memory", "make_attention"]

Attend = Callable[[Tensor, Memory], Attended]


def make_attention(kind: str, query_size: int, value_size: int) -> Attention:
    """The attention module for a config name ("none": the classic fixed context)."""
    if kind == "none":
        return FixedContext()
    if kind == "dot":
        return DotAttention()
    if kind == "additive":
        return AdditiveAttention(query_size, value_size)
    if kind == "general":
        return GeneralAttention(query_size, value_size)
    if kind == "hard":
        return HardAttention(query_size, value_size)
    raise ValueError(f"attention {kind!r} is not available")


@dataclass
class DecoderState:
    """Per-hypothesis decoder state: the RNN state (each (L, N, H)), the attentional vector
    fed to the next step (N, H), the last attention weights (N, S), and with hard attention
    the last step's position choice (each (N, 1); training only, not kept by `select`)."""

    rnn: RNNState
    feed: Tensor
    attention: Tensor | None = None
    choice: PositionChoice | None = None

    def select(self, index: Tensor) -> DecoderState:
        return DecoderState(
            tuple(t.index_select(1, index) for t in self.rnn),
            self.feed.index_select(0, index),
            None if self.attention is None else self.attention.index_select(0, index),
        )

    def first(self, n: int) -> DecoderState:
        """The first n hypotheses' state (the RNN's made contiguous, as the RNN wants it)."""
        return DecoderState(tuple(t[:, :n].contiguous() for t in self.rnn), self.feed[:n])


@dataclass
class DecoderOutput:
    """A training pass: logits (B, T, V), or (N, V) for the N real positions in row order
    when the pass was given which positions are real; with hard attention also its position
    choices (B, T)."""

    logits: Tensor
    choice: PositionChoice | None = None

    def at(self, real: Tensor | None) -> DecoderOutput:
        """The logits of the positions in real (B, T) only, (N, V) in row order; all for None."""
        return self if real is None else DecoderOutput(self.logits[real], self.choice)


class Bridge(nn.Module):
    """Start the decoder from the encoder's final states: learned (tanh layer), as is, or zeros."""

    def __init__(self, kind: str, encoder_size: int, decoder_size: int, layers: int, n_states: int):
        super().__init__()
        self.kind, self.layers = kind, layers
        self.projections = nn.ModuleList(
            nn.Linear(encoder_size, decoder_size) for _ in range(n_states if kind == "bridge" else 0)
        )

    def forward(self, final: RNNState) -> RNNState:
        """Each (Le, B, H) -> (Ld, B, H); with fewer encoder layers the top one is repeated."""
        aligned = tuple(self._match_layers(t) for t in final)
        if self.kind == "zeros":
            return tuple(torch.zeros_like(t) for t in aligned)
        if self.kind == "last":
            return aligned
        return tuple(torch.tanh(p(t)) for p, t in zip(self.projections, aligned, strict=True))

    def _match_layers(self, final: Tensor) -> Tensor:
        if final.size(0) >= self.layers:
            return final[-self.layers :].contiguous()
        extra = final[-1:].expand(self.layers - final.size(0), -1, -1)
        return torch.cat([final, extra], dim=0)


class Decoder(nn.Module):
    """An RNN decoder with one of the attention modules (or the fixed context)."""

    def __init__(
        self,
        cell: str,
        vocab_size: int,
        embedding_size: int,
        hidden_size: int,
        num_layers: int,
        attention: str,
        input_feeding: bool,
        dropout: float,
        embedding_dropout: float,
        padding_idx: int,
        dropout_placement: str = "output",
        variational: bool = False,
    ):
        super().__init__()
        self.hidden_size = hidden_size
        self.input_feeding = input_feeding
        self.attention = make_attention(attention, hidden_size, hidden_size)
        before = int(self.attention.attends_before_rnn)
        rnn_input = embedding_size + hidden_size * (before + int(input_feeding))
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=padding_idx)
        self.embedding_dropout = make_dropout(embedding_dropout, variational)
        self.rnn = make_rnn(cell, rnn_input, hidden_size, num_layers, dropout, bidirectional=False)
        self.combine = nn.Linear(2 * hidden_size, hidden_size, bias=False)  # W_c
        at_output = dropout if dropout_placement == "output" else 0.0
        self.dropout = nn.Dropout(at_output)  # on the attentional vector, before the output layer
        self.feed_dropout = nn.Dropout(dropout - at_output)  # on the fed-back attentional vector
        self.combine_dropout = nn.Dropout(dropout - at_output)  # on [h; c]
        self.output: nn.Module = nn.Linear(hidden_size, vocab_size)

    @classmethod
    def from_config(
        cls, config: ModelConfig, vocab_size: int, attention: str, input_feeding: bool
    ) -> Decoder:
        """A decoder shaped by a ModelConfig (the skip-thought model overrides the attention)."""
        return cls(
            config.cell,
            vocab_size,
            config.embedding_size,
            config.hidden_size,
            config.decoder_layers,
            attention,
            input_feeding,
            config.dropout,
            config.embedding_dropout,
            PAD_ID,
            config.dropout_placement,
            config.variational_dropout,
        )

    def make_memory(self, encoded: EncoderOutput) -> Memory:
        keys = self.attention.project_keys(encoded.states)  # (B, S, Hk)
        return Memory(encoded.states, keys, encoded.mask, encoded.final[0][-1])

    def initial_state(self, rnn_state: RNNState, memory: Memory) -> DecoderState:
        feed = memory.values.new_zeros(memory.values.size(0), self.hidden_size)
        return DecoderState(rnn_state, feed)

    def step(self, prev_tokens: Tensor, state: DecoderState, memory: Memory) -> tuple[Tensor, DecoderState]:
        """One target position: prev_tokens (N,) -> logits (N, V) and the next state."""
        state = self.attentional_step(prev_tokens, state, memory)
        return self.output(self.dropout(state.feed)), state  # (N, V)

    def attentional_step(
        self, prev_tokens: Tensor, state: DecoderState, memory: Memory, attend: Attend | None = None
    ) -> DecoderState:
        """Steps 1-5 of the module docstring: the next state, whose `feed` is the attentional
        vector a_t (N, H). attend: the decoder's own attention unless a fast path passes an
        equivalent."""
        attend = attend or self.attention.attend
        inputs = [self.embedding_dropout(self.embedding(prev_tokens)).unsqueeze(1)]  # (N, 1, E)
        if self.attention.attends_before_rnn:  # from the previous state s_{t-1}
            attended = attend(top_hidden(state.rnn).unsqueeze(1), memory)  # context (N, 1, H)
            inputs.append(attended.context)
        if self.input_feeding:  # the previous attentional vector a_{t-1}
            inputs.append(self.feed_dropout(state.feed).unsqueeze(1))
        output, raw = self.rnn(torch.cat(inputs, dim=-1), to_raw(state.rnn))  # h_t (N, 1, H)
        if not self.attention.attends_before_rnn:  # from the new state h_t
            attended = attend(output, memory)
        combined = self.combine(self.combine_dropout(torch.cat([output, attended.context], dim=-1)))
        attentional = torch.tanh(combined).squeeze(1)  # a_t (N, H)
        weights = None if attended.weights is None else attended.weights.squeeze(1)  # (N, S)
        return DecoderState(to_state(raw), attentional, weights, attended.choice)

    def unroll(
        self, tgt_in: Tensor, state: DecoderState, memory: Memory, use_gold: Tensor | None = None
    ) -> DecoderOutput:
        """The step over every position of tgt_in (B, T) -> logits (B, T, V).

        Teacher forcing feeds the gold token y_{t-1}. With scheduled sampling (Bengio et al.
        2015), use_gold (B, T) bool says where: where False, the step is fed the model's own
        most probable token from the previous step instead. Position 0 is always BOS.
        """
        logits: list[Tensor] = []
        choices: list[PositionChoice] = []
        for t in range(tgt_in.size(1)):
            prev = tgt_in[:, t]  # (B,)
            if use_gold is not None and t > 0:
                prev = torch.where(use_gold[:, t], prev, logits[-1].detach().argmax(dim=-1))
            step_logits, state = self.step(prev, state, memory)
            logits.append(step_logits)
            choices += [state.choice] if state.choice is not None else []
        choice = PositionChoice.stack(choices) if choices else None
        return DecoderOutput(torch.stack(logits, dim=1), choice)  # (B, T, V)

    def tie_output_to_embedding(self) -> None:
        """The output layer scores each target piece with its embedding (Press and Wolf 2017).
        When the embedding is narrower than the attentional vector, a linear map (no bias)
        first brings the vector down to the embedding size."""
        size = self.embedding.embedding_dim
        output = nn.Linear(size, self.embedding.num_embeddings)
        nn.init.zeros_(output.bias)
        output.weight = self.embedding.weight
        if size == self.hidden_size:
            self.output = output
            return
        projection = nn.Linear(self.hidden_size, size, bias=False)
        nn.init.xavier_uniform_(projection.weight)
        self.output = nn.Sequential(projection, output)
