"""Where the fast paths are chosen: the one place that decides, for a model and a batch, which
computation runs. Every choice reads what the parts declare about themselves (the attention's
`attends_before_rnn`, `reads_query` and `has_tape`, the decoder's `input_feeding`, the RNN's
kind and device) and falls back to the reference code of `seqcli.model` and `seqcli.loss`.
"""

from __future__ import annotations

from torch import Tensor, nn

from seqcli.fast import held_rnn
from seqcli.fast.cross_entropy import fused_sequence_loss
from seqcli.fast.dropout import Dropout
from seqcli.fast.teacher_forcing import shrinking_steps, whole_sequence
from seqcli.model.attention import Memory
from seqcli.model.cells import RNNState, run_packed
from seqcli.model.decoder import Decoder, DecoderOutput, DecoderState
from seqcli.model.encoder import Encoder

# The training loss: seqcli.loss.sequence_loss's value and gradient, computed fused.
sequence_loss = fused_sequence_loss


def run_rnn(
    rnn: nn.RNNBase, inputs: Tensor, lengths: Tensor, state: RNNState | None = None
) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
    """`seqcli.model.cells.run_packed`, on the held path where it is equal and faster."""
    if held_rnn.can_hold(rnn, inputs, state):
        return held_rnn.run_held(rnn, inputs, lengths, state)
    return run_packed(rnn, inputs, lengths, state)


def runs_whole_sequence(decoder: Decoder) -> bool:
    """Whether teacher-forced steps are independent given the gold inputs: no attentional
    vector fed back, and no context before the RNN that depends on the decoder state."""
    attention = decoder.attention
    return not decoder.input_feeding and not (attention.attends_before_rnn and attention.reads_query)


def teacher_forced(
    decoder: Decoder,
    tgt_in: Tensor,
    state: DecoderState,
    memory: Memory,
    use_gold: Tensor | None,
    real: Tensor | None,
) -> DecoderOutput:
    """`Decoder.unroll`'s logits, restricted to real (B, T) when given, by the cheapest pass.

    Scheduled sampling (use_gold given) needs each step's prediction before the next step, and
    hard attention (no `real`: its REINFORCE term reads every position) its per-step choices,
    so both keep the reference unroll unless the steps are independent."""
    if use_gold is None and runs_whole_sequence(decoder):
        return whole_sequence(decoder, tgt_in, state, memory, real, run_rnn)
    if use_gold is None and real is not None:
        return shrinking_steps(decoder, tgt_in, state, memory, real)
    return decoder.unroll(tgt_in, state, memory, use_gold).at(real)


def use_fast_paths_(model: nn.Module) -> None:
    """Swap the fast equivalents into a model's modules: its encoders' RNN runner and dropout."""
    for module in model.modules():
        if isinstance(module, Encoder):
            module.run_rnn = run_rnn
    use_fast_dropout_(model)


def use_fast_dropout_(model: nn.Module) -> None:
    """Replace every nn.Dropout of model by `seqcli.fast.dropout.Dropout` (same distribution,
    a cheaper mask on CPU; no parameters, so checkpoints are unchanged)."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, Dropout(child.p))
