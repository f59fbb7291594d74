"""Decoder: one target step with attention and input feeding, and the teacher-forced passes.

The step, in the order of the textbook (Bahdanau et al. 2015; Luong et al. 2015):
  1. embed the previous target token y_{t-1};
  2. Bahdanau (additive) or the fixed context: attend from the previous state, c_t;
  3. run the RNN on [embedding; c_t if attended before; previous attentional vector if input
     feeding] -> h_t;
  4. Luong (dot, general, hard): attend from the new state h_t, c_t;
  5. combine them into the attentional vector a_t = tanh(W_c [h_t; c_t]);
  6. the output layer turns a_t into logits over the target vocabulary.
`unroll` runs the step over a whole target, feeding gold tokens (teacher forcing) or, where
scheduled sampling says so, the model's own previous prediction. Without input feeding and
without a context before the RNN that depends on the decoder state, the steps are independent
given the gold inputs: `whole_sequence` then runs the RNN over the whole target in one call,
and steps 4-6 need no loop over time at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seqcli.config import ModelConfig
from seqcli.model.attention import Attended, Attention, Memory, Readout
from seqcli.model.cells import Cell, RNNState, top_hidden
from seqcli.model.dropout import make_dropout
from seqcli.model.encoder import EncoderOutput
from seqcli.model.parts import REFERENCE, Parts
from seqcli.vocab import PAD_ID

__all__ = ["Bridge", "Decoder", "DecoderState", "Memory", "Readout"]


@dataclass
class DecoderState:
    """Per-hypothesis decoder state: the RNN state (each (L, N, H)), the attentional vector
    fed to the next step (N, H), and the last attention weights (N, S)."""

    rnn: RNNState
    feed: Tensor
    attention: Tensor | None = None

    def select(self, index: Tensor) -> DecoderState:
        return DecoderState(
            tuple(t.index_select(1, index) for t in self.rnn),
            self.feed.index_select(0, index),
            None if self.attention is None else self.attention.index_select(0, index),
        )


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
        cell: type[Cell],
        vocab_size: int,
        embedding_size: int,
        hidden_size: int,
        num_layers: int,
        attention: type[Attention],
        input_feeding: bool,
        dropout: float,
        embedding_dropout: float,
        padding_idx: int,
        dropout_placement: str = "output",
        variational: bool = False,
        parts: Parts = REFERENCE,
    ):
        super().__init__()
        self.cell = cell
        self.hidden_size = hidden_size
        self.input_feeding = input_feeding
        self.attention = attention(hidden_size, hidden_size)
        before = int(self.attention.attends_before_rnn)
        rnn_input = embedding_size + hidden_size * (before + int(input_feeding))
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=padding_idx)
        self.embedding_dropout = make_dropout(embedding_dropout, variational, parts.dropout)
        self.rnn = cell.build(rnn_input, hidden_size, num_layers, dropout, bidirectional=False)
        self.combine = nn.Linear(2 * hidden_size, hidden_size, bias=False)  # W_c
        at_output = dropout if dropout_placement == "output" else 0.0
        self.dropout = parts.dropout(at_output)  # on the attentional vector, before the output layer
        self.feed_dropout = parts.dropout(dropout - at_output)  # on the fed-back attentional vector
        self.combine_dropout = parts.dropout(dropout - at_output)  # on [h; c]
        self.output: nn.Module = nn.Linear(hidden_size, vocab_size)

    @classmethod
    def from_config(
        cls,
        config: ModelConfig,
        vocab_size: int,
        attention: str,
        input_feeding: bool,
        parts: Parts = REFERENCE,
    ) -> Decoder:
        """A decoder shaped by a ModelConfig (the skip-thought model overrides the attention)."""
        return cls(
            parts.cells[config.cell],
            vocab_size,
            config.embedding_size,
            config.hidden_size,
            config.decoder_layers,
            parts.attentions[attention],
            input_feeding,
            config.dropout,
            config.embedding_dropout,
            PAD_ID,
            config.dropout_placement,
            config.variational_dropout,
            parts,
        )

    def make_memory(self, encoded: EncoderOutput) -> Memory:
        """The encoder's results as the attention reads them, with the keys projected once."""
        return self.attention.make_memory(encoded.states, encoded.mask, encoded.final[0][-1])

    def initial_state(self, rnn_state: RNNState, memory: Memory) -> DecoderState:
        feed = memory.values.new_zeros(memory.values.size(0), self.hidden_size)
        return DecoderState(rnn_state, feed)

    def step(self, prev_tokens: Tensor, state: DecoderState, memory: Memory) -> tuple[Tensor, DecoderState]:
        """One target position: prev_tokens (N,) -> logits (N, V) and the next state."""
        output, rnn_state, attended = self.rnn_step(prev_tokens, state, memory)  # steps 1-4
        readout = self.read_out(output, attended, memory)  # steps 5-6
        weights = None if attended.weights is None else attended.weights.squeeze(1)  # (N, S)
        return readout.logits.squeeze(1), DecoderState(rnn_state, readout.feed.squeeze(1), weights)

    def rnn_step(
        self, prev_tokens: Tensor, state: DecoderState, memory: Memory
    ) -> tuple[Tensor, RNNState, Attended]:
        """Steps 1-4 of the module docstring: the RNN output h_t (N, 1, H), its state, and the
        attention's context and weights."""
        inputs = [self.embed(prev_tokens.unsqueeze(1))]  # (N, 1, E)
        if self.attention.attends_before_rnn:  # from the previous state s_{t-1}
            attended = self.attention.attend(top_hidden(state.rnn).unsqueeze(1), memory)  # (N, 1, H)
            inputs.append(attended.context)
        if self.input_feeding:  # the previous attentional vector a_{t-1}
            inputs.append(self.feed_dropout(state.feed).unsqueeze(1))
        output, rnn_state = self.cell.run(self.rnn, torch.cat(inputs, dim=-1), None, state.rnn)  # (N, 1, H)
        if not self.attention.attends_before_rnn:  # from the new state h_t
            attended = self.attention.attend(output, memory)
        return output, rnn_state, attended

    def embed(self, tokens: Tensor) -> Tensor:
        """Step 1: tokens (N, T) -> embeddings (N, T, E)."""
        return self.embedding_dropout(self.embedding(tokens))

    def read_out(
        self, output: Tensor, attended: Attended, memory: Memory, real: Tensor | None = None
    ) -> Readout:
        """Steps 5-6 for RNN outputs (N, T, H): the attentional vectors and the logits, as the
        attention reads them out (hard attention: at every source position, mixed); with real
        (N, T) bool, only those positions."""
        return self.attention.read_out(
            output, attended, memory, self.combine, self.combine_dropout, self.logits, real
        )

    def logits(self, attentional: Tensor) -> Tensor:
        """Step 6: attentional vectors (..., H) -> logits (..., V)."""
        return self.output(self.dropout(attentional))

    def teacher_forced(
        self,
        tgt_in: Tensor,
        state: DecoderState,
        memory: Memory,
        use_gold: Tensor | None = None,
        real: Tensor | None = None,
    ) -> Readout:
        """Training logits for the target inputs tgt_in (B, T): `whole_sequence` where the steps
        are independent (no scheduled sampling either), else `unroll`. real (B, T) bool, the
        positions before padding: when given, only they get logits, (N, V) in row order."""
        if use_gold is None and self.runs_whole_sequence:
            return self.whole_sequence(tgt_in, state, memory, real)
        output = self.unroll(tgt_in, state, memory, use_gold)
        return output if real is None else output.at(real)

    @property
    def runs_whole_sequence(self) -> bool:
        """Whether teacher-forced steps are independent given the gold inputs: no attentional
        vector fed back, and no context before the RNN that depends on the decoder state."""
        attention = self.attention
        return not self.input_feeding and not (attention.attends_before_rnn and attention.reads_query)

    def unroll(
        self, tgt_in: Tensor, state: DecoderState, memory: Memory, use_gold: Tensor | None = None
    ) -> Readout:
        """The step over every position of tgt_in (B, T) -> logits (B, T, V).

        Teacher forcing feeds the gold token y_{t-1}. With scheduled sampling (Bengio et al.
        2015), use_gold (B, T) bool says where: where False, the step is fed the model's own
        most probable token from the previous step instead. Position 0 is always BOS.
        """
        readouts: list[Readout] = []
        for t in range(tgt_in.size(1)):
            prev = tgt_in[:, t]  # (B,)
            if use_gold is not None and t > 0:
                guess = readouts[-1].logits[:, 0].detach().argmax(dim=-1)  # the previous step's
                prev = torch.where(use_gold[:, t], prev, guess)
            output, rnn_state, attended = self.rnn_step(prev, state, memory)
            readouts.append(self.read_out(output, attended, memory))  # (B, 1, ...)
            state = DecoderState(rnn_state, readouts[-1].feed.squeeze(1))
        return type(readouts[0]).cat(readouts)  # (B, T, ...)

    def whole_sequence(
        self, tgt_in: Tensor, state: DecoderState, memory: Memory, real: Tensor | None = None
    ) -> Readout:
        """`unroll`'s logits without a loop over time (only where `runs_whole_sequence`): the
        RNN runs over the whole target in one call, skipping padding when real (B, T) is given,
        and steps 4-6 take every position at once. -> logits (B, T, V), or (N, V) for real."""
        inputs = [self.embed(tgt_in)]  # (B, T, E)
        if self.attention.attends_before_rnn:  # a context that does not read the state: the same every step
            query = top_hidden(state.rnn).unsqueeze(1).expand(-1, tgt_in.size(1), -1)  # (B, T, H), unread
            inputs.append(self.attention.attend(query, memory).context)
        lengths = None if real is None else real.sum(1)  # (B,)
        outputs, _ = self.cell.run(self.rnn, torch.cat(inputs, dim=-1), lengths, state.rnn)  # (B, T, H)
        attended = self.attention.attend(outputs, memory)  # context (B, T, H)
        return self.read_out(outputs, attended, memory, real)

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
