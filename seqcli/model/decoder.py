"""Decoder: one-token steps with attention and input feeding, plus a whole-sequence fast path."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqcli.config import ModelConfig
from seqcli.model.attention import DotAttention, MemoryTape, make_attention
from seqcli.model.cells import RNNState, make_rnn, run_rnn, to_raw, to_state, top_hidden
from seqcli.model.dropout import Dropout
from seqcli.model.encoder import EncoderOutput
from seqcli.model.hard_attention import HardAttention, PositionChoice
from seqcli.vocab import PAD_ID


@dataclass
class Memory:
    """Per-sentence encoder results the decoder reads at every step.

    values (N, S, H), keys (N, S, Hk) as projected by the attention, mask (N, S),
    summary (N, H): the encoder's final top-layer state, the fixed context without attention;
    tape: set by the training steps to attend through (dot and general attention only).
    """

    values: Tensor
    keys: Tensor
    mask: Tensor
    summary: Tensor
    tape: MemoryTape | None = None

    def select(self, index: Tensor) -> Memory:
        values, keys, mask, summary = (
            t.index_select(0, index) for t in (self.values, self.keys, self.mask, self.summary)
        )
        return Memory(values, keys, mask, summary)

    def first(self, n: int) -> Memory:
        """The first n sentences' memory (views, no copy)."""
        return Memory(self.values[:n], self.keys[:n], self.mask[:n], self.summary[:n])


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
    """An RNN decoder with one of the attention modules (or a fixed context).

    Each step: (1) with additive attention, attend from the previous state; (2) run the RNN
    on [embedding; context if attended before; previous attentional vector if input
    feeding]; (3) otherwise attend from the new state; (4) combine output and context into
    the attentional vector tanh(W [h; c]), which the output layer turns into logits.
    """

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
    ):
        super().__init__()
        self.hidden_size = hidden_size
        self.input_feeding = input_feeding
        self.attention = make_attention(attention, hidden_size, hidden_size)
        self.context_first = self.attention is None or self.attention.uses_previous_state
        rnn_input = embedding_size + hidden_size * (int(self.context_first) + int(input_feeding))
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=padding_idx)
        self.embedding_dropout = Dropout(embedding_dropout)
        self.rnn = make_rnn(cell, rnn_input, hidden_size, num_layers, dropout, bidirectional=False)
        self.combine = nn.Linear(2 * hidden_size, hidden_size, bias=False)
        at_output = dropout if dropout_placement == "output" else 0.0
        self.dropout = Dropout(at_output)  # on the attentional vector, before the output layer
        self.feed_dropout = Dropout(dropout - at_output)  # on the fed-back attentional vector
        self.combine_dropout = Dropout(dropout - at_output)  # on [h; c]
        self.output = nn.Linear(hidden_size, vocab_size)

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
        )

    @property
    def can_run_whole_sequence(self) -> bool:
        """Without input feeding or attention from the previous state, steps are independent
        given the gold inputs, so the RNN can run over the whole target in one call."""
        return not self.input_feeding and not (
            self.attention is not None and self.attention.uses_previous_state
        )

    def make_memory(self, encoded: EncoderOutput) -> Memory:
        keys = encoded.states if self.attention is None else self.attention.project_keys(encoded.states)
        return Memory(encoded.states, keys, encoded.mask, encoded.final[0][-1])

    def initial_state(self, rnn_state: RNNState, memory: Memory) -> DecoderState:
        feed = memory.values.new_zeros(memory.values.size(0), self.hidden_size)
        return DecoderState(rnn_state, feed)

    def _attend(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor | None, PositionChoice | None]:
        """query (N, T, H) -> context (N, T, H), weights (N, T, S) or None, hard attention's choice.

        The memory may hold more sentences than the query (the shrinking training steps): the
        first N are the query's."""
        if memory.tape is not None:
            return (*memory.tape.attend(query, memory.keys, memory.values, memory.mask), None)
        rows = query.size(0)
        if memory.values.size(0) > rows and not isinstance(self.attention, HardAttention):
            padded = F.pad(query, (0, 0, 0, 0, 0, memory.values.size(0) - rows))
            context, weights, _ = self._attend(padded, memory)
            return context[:rows], None if weights is None else weights[:rows], None
        if self.attention is None:
            return memory.summary.unsqueeze(1).expand_as(query), None, None
        if isinstance(self.attention, HardAttention):
            return self.attention(query, memory.keys, memory.values, memory.mask)
        context, weights = self.attention(query, memory.keys, memory.values, memory.mask)
        return context, weights, None

    def step(self, prev_tokens: Tensor, state: DecoderState, memory: Memory) -> tuple[Tensor, DecoderState]:
        """One target position. prev_tokens (N,) -> logits (N, V) and the next state."""
        state = self.step_attentional(prev_tokens, state, memory)
        return self.output(self.dropout(state.feed)), state  # (N, V)

    def step_attentional(self, prev_tokens: Tensor, state: DecoderState, memory: Memory) -> DecoderState:
        """One target position up to the attentional vector (N, H), kept as the next state's feed."""
        inputs = [self.embedding_dropout(self.embedding(prev_tokens)).unsqueeze(1)]  # (N, 1, E)
        if self.context_first:
            context, weights, choice = self._attend(top_hidden(state.rnn).unsqueeze(1), memory)  # (N, 1, H)
            inputs.append(context)
        if self.input_feeding:
            inputs.append(self.feed_dropout(state.feed).unsqueeze(1))
        output, raw = self.rnn(torch.cat(inputs, dim=-1), to_raw(state.rnn))  # (N, 1, H)
        if not self.context_first:
            context, weights, choice = self._attend(output, memory)
        combined = self.combine(self.combine_dropout(torch.cat([output, context], dim=-1)))
        attentional = torch.tanh(combined).squeeze(1)  # (N, H)
        attention = None if weights is None else weights.squeeze(1)
        return DecoderState(to_state(raw), attentional, attention, choice)

    def forward_whole_sequence(
        self, tgt_in: Tensor, state: DecoderState, memory: Memory, real: Tensor | None = None
    ) -> DecoderOutput:
        """Teacher-forced fast path: tgt_in (B, T) -> logits with one RNN call.

        real (B, T) bool, the positions before padding: when given, the RNN skips padding
        (cells.run_rnn) and only real positions get logits, (N, V)."""
        embedded = self.embedding_dropout(self.embedding(tgt_in))  # (B, T, E)
        if self.context_first:  # fixed context, fed at every step
            embedded = torch.cat([embedded, memory.summary.unsqueeze(1).expand(-1, tgt_in.size(1), -1)], -1)
        if real is None:
            outputs, _ = self.rnn(embedded, to_raw(state.rnn))  # (B, T, H)
        else:
            outputs, _ = run_rnn(self.rnn, embedded, real.sum(1), state.rnn)
        context, _, choice = self._attend(outputs, memory)  # (B, T, H)
        attentional = torch.tanh(self.combine(self.combine_dropout(torch.cat([outputs, context], dim=-1))))
        return DecoderOutput(self._logits(attentional, real), choice)

    def _logits(self, attentional: Tensor, real: Tensor | None) -> Tensor:
        """attentional (B, T, H) -> logits (B, T, V), or (N, V) for the real positions only;
        attentional already (N, H) with real None -> (N, V)."""
        return self.output(self.dropout(attentional if real is None else attentional[real]))

    def forward_steps(
        self,
        tgt_in: Tensor,
        state: DecoderState,
        memory: Memory,
        use_gold: Tensor | None,
        real: Tensor | None = None,
    ) -> DecoderOutput:
        """Step by step over tgt_in (B, T) -> logits (B, T, V), or (N, V) given real.

        use_gold (B, T) bool, or None for pure teacher forcing: where False, the step is fed
        the model's own most probable token from the previous step instead of the gold one
        (scheduled sampling). Position 0 is always BOS. real (B, T) bool marks the positions
        before padding; with it, only those get logits, and under pure teacher forcing the
        steps run only the sentences not yet finished.
        """
        choices: list[PositionChoice] = []
        if use_gold is None and real is not None and not isinstance(self.attention, HardAttention):
            return DecoderOutput(self._logits(self._shrinking_steps(tgt_in, state, memory, real), None))
        if use_gold is None:  # nothing depends on the logits: project all positions at once
            attentional = []
            for t in range(tgt_in.size(1)):
                state = self.step_attentional(tgt_in[:, t], state, memory)
                attentional.append(state.feed)
                choices += [state.choice] if state.choice is not None else []
            logits = self._logits(torch.stack(attentional, dim=1), real)
            return DecoderOutput(logits, PositionChoice.stack(choices) if choices else None)
        logits_per_step = [tgt_in.new_empty(0)]
        for t in range(tgt_in.size(1)):
            prev = tgt_in[:, t]
            if t > 0:
                predicted = logits_per_step[-1].detach().argmax(dim=-1)
                prev = torch.where(use_gold[:, t], prev, predicted)
            logits, state = self.step(prev, state, memory)
            logits_per_step.append(logits)
            choices += [state.choice] if state.choice is not None else []
        logits = torch.stack(logits_per_step[1:], dim=1)  # (B, T, V)
        logits = logits if real is None else logits[real]
        return DecoderOutput(logits, PositionChoice.stack(choices) if choices else None)

    def _shrinking_steps(self, tgt_in: Tensor, state: DecoderState, memory: Memory, real: Tensor) -> Tensor:
        """Teacher-forced steps over sentences sorted longest first, each step running only
        those still going, as a packed sequence does: padding costs no RNN work, so a batch of
        mixed lengths costs its real tokens (in more, narrower steps than a length bucket).
        Returns the attentional vectors of the real positions (N, H), in the order of
        `tgt_in[real]` (row by row)."""
        lengths = real.sum(1)
        order = torch.argsort(lengths, descending=True, stable=True)
        # How many sentences are still going at each step: one host sync per batch.
        running = (
            lengths[order][None, :] > torch.arange(tgt_in.size(1), device=real.device)[:, None]
        )  # (T, B)
        counts = running.sum(1).tolist()
        state, memory, tgt_in = state.select(order), memory.select(order), tgt_in.index_select(0, order)
        if isinstance(self.attention, DotAttention):  # dot and general: the memory's gradient at once
            tape = MemoryTape()
            keys, values = tape.open(memory.keys, memory.values)
            memory = Memory(values, keys, memory.mask, memory.summary, tape)
        attentional = []
        for t, n in enumerate(counts):
            if n == 0:
                break
            if n < state.feed.size(0):
                state = state.first(n)
            if memory.tape is None and 2 * n <= memory.values.size(0):  # a slice's gradient is memory-sized
                memory = memory.first(n)
            state = self.step_attentional(tgt_in[:n, t], state, memory)
            attentional.append(state.feed)  # (n, H)
        # The steps' outputs come time-major; (step t, sorted row r) is real position starts[row] + t.
        steps, rows = running.nonzero(as_tuple=True)  # time-major, like the steps
        starts = torch.cumsum(lengths, 0) - lengths  # (B,) where each row's positions begin
        position = starts[order[rows]] + steps  # (N,)
        return torch.cat(attentional).index_select(0, torch.argsort(position))  # (N, H)

    def tie_output_to_embedding(self) -> None:
        self.output.weight = self.embedding.weight
