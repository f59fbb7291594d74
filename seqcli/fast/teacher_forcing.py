"""Teacher-forced decoder passes that give `Decoder.unroll`'s logits with less work.

- `whole_sequence`: without input feeding and without a state-dependent context before the
  RNN, the steps are independent given the gold inputs, so the RNN runs over the whole
  target in one call and attention reads all its outputs at once.
- `shrinking_steps`: the step loop over sentences sorted longest first, each step running
  only those still going, as a packed sequence does: padding costs no RNN work; with dot and
  general attention the memory's gradient is summed once after the loop (`MemoryTape`).

Both return logits for the real positions only, in row order (`tgt_in[real]`), when given
`real` (B, T) bool. tests/test_fast_paths.py checks them against the unroll.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from seqcli.fast.memory_tape import MemoryTape
from seqcli.model.attention import Attended, Memory
from seqcli.model.cells import to_raw
from seqcli.model.decoder import Attend, Decoder, DecoderOutput, DecoderState
from seqcli.model.encoder import RunRNN


def whole_sequence(
    decoder: Decoder,
    tgt_in: Tensor,
    state: DecoderState,
    memory: Memory,
    real: Tensor | None,
    run_rnn: RunRNN,
) -> DecoderOutput:
    """tgt_in (B, T) -> logits (B, T, V), or (N, V) for the positions in real (B, T), where
    run_rnn (like `cells.run_packed`) runs the RNN without the padding."""
    embedded = decoder.embedding_dropout(decoder.embedding(tgt_in))  # (B, T, E)
    if decoder.attention.attends_before_rnn:  # the fixed context, fed at every step
        embedded = torch.cat([embedded, memory.summary.unsqueeze(1).expand(-1, tgt_in.size(1), -1)], -1)
    if real is None:
        outputs, _ = decoder.rnn(embedded, to_raw(state.rnn))  # (B, T, H)
    else:
        outputs, _ = run_rnn(decoder.rnn, embedded, real.sum(1), state.rnn)
    attended = decoder.attention.attend(outputs, memory)  # context (B, T, H)
    combined = decoder.combine(decoder.combine_dropout(torch.cat([outputs, attended.context], dim=-1)))
    attentional = torch.tanh(combined)  # (B, T, H)
    if real is not None:
        attentional = attentional[real]  # (N, H)
    return DecoderOutput(decoder.output(decoder.dropout(attentional)), attended.choice)


def shrinking_steps(
    decoder: Decoder, tgt_in: Tensor, state: DecoderState, memory: Memory, real: Tensor
) -> DecoderOutput:
    """tgt_in (B, T), real (B, T) -> logits (N, V) of the real positions, row by row."""
    lengths = real.sum(1)
    order = torch.argsort(lengths, descending=True, stable=True)
    # How many sentences are still going at each step: one host sync per batch.
    running = lengths[order][None, :] > torch.arange(tgt_in.size(1), device=real.device)[:, None]  # (T, B)
    counts = running.sum(1).tolist()
    state, memory, tgt_in = state.select(order), memory.select(order), tgt_in.index_select(0, order)
    attend = _first_rows(decoder.attention.attend)
    tape = None
    if decoder.attention.has_tape:  # dot and general: the memory's gradient at once
        tape = MemoryTape()
        memory, attend = tape.open_memory(memory), tape.attend
    attentional = []
    for t, n in enumerate(counts):
        if n == 0:
            break
        if n < state.feed.size(0):
            state = state.first(n)
        if tape is None and 2 * n <= memory.values.size(0):  # a slice's gradient is memory-sized
            memory = memory.first(n)
        state = decoder.attentional_step(tgt_in[:n, t], state, memory, attend)
        attentional.append(state.feed)  # (n, H)
    # The steps' outputs come time-major; (step t, sorted row r) is real position starts[row] + t.
    steps, rows = running.nonzero(as_tuple=True)  # time-major, like the steps
    starts = torch.cumsum(lengths, 0) - lengths  # (B,) where each row's positions begin
    position = starts[order[rows]] + steps  # (N,)
    attentional_real = torch.cat(attentional).index_select(0, torch.argsort(position))  # (N, H)
    return DecoderOutput(decoder.output(decoder.dropout(attentional_real)))


def _first_rows(attend: Attend) -> Attend:
    """An attention that accepts a memory with more sentences than the query (the first ones
    are the query's): the query is padded to the memory's rows, which keeps the memory's
    gradient one tensor instead of a slice's memory-sized gradient at every step."""

    def padded(query: Tensor, memory: Memory) -> Attended:
        rows = query.size(0)
        if memory.values.size(0) == rows:
            return attend(query, memory)
        full = attend(F.pad(query, (0, 0, 0, 0, 0, memory.values.size(0) - rows)), memory)
        weights = None if full.weights is None else full.weights[:rows]
        return Attended(full.context[:rows], weights)

    return padded
