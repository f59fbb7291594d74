import math

import pytest
import torch

from seqcli.config import ModelConfig
from seqcli.model.attention import AdditiveAttention, DotAttention, GeneralAttention
from seqcli.model.seq2seq import Seq2Seq
from seqcli.tokenizer import BOS_ID, PAD_ID

ATTENTIONS = {
    "dot": lambda: DotAttention(8, 8),
    "general": lambda: GeneralAttention(8, 8),
    "additive": lambda: AdditiveAttention(8, 8),
}


@pytest.mark.parametrize("name", sorted(ATTENTIONS))
def test_attention_gives_padding_zero_weight_and_ignores_its_values(name: str) -> None:
    torch.manual_seed(0)
    attention = ATTENTIONS[name]()
    values = torch.randn(2, 5, 8)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    query = torch.randn(2, 3, 8)
    context, weights = attention(query, attention.project_keys(values), values, mask)
    assert context.shape == (2, 3, 8) and weights.shape == (2, 3, 5)
    assert torch.all(weights[0, :, 3:] == 0)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3))
    scrambled = values.clone()
    scrambled[0, 3:] = 1000.0
    context2, _ = attention(query, attention.project_keys(scrambled), scrambled, mask)
    assert torch.equal(context[0], context2[0])


def tiny_model(**changes: object) -> Seq2Seq:
    torch.manual_seed(0)
    config = ModelConfig(
        embedding_size=8, hidden_size=12, encoder_layers=2, decoder_layers=2, dropout=0.0, **changes
    )
    return Seq2Seq(config, src_vocab_size=20, tgt_vocab_size=15).eval()


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    src = torch.tensor([[4, 5, 6, 7], [8, 9, PAD_ID, PAD_ID]])
    lengths = torch.tensor([4, 2])
    tgt_in = torch.tensor([[BOS_ID, 4, 5, 6], [BOS_ID, 7, 8, PAD_ID]])
    return src, lengths, tgt_in


@pytest.mark.parametrize("attention", ["general", "dot", "additive", "none", "hard"])
def test_a_padded_sentence_encodes_and_decodes_as_it_does_alone(attention: str) -> None:
    model = tiny_model(attention=attention)
    src, lengths, tgt_in = batch()
    together = model(src, lengths, tgt_in).logits
    alone = model(src[1:, :2], lengths[1:], tgt_in[1:, :3]).logits
    assert torch.allclose(together[1, :3], alone[0], atol=1e-5)


@pytest.mark.parametrize("attention", ["general", "dot", "none", "hard"])
def test_the_whole_sequence_pass_equals_the_step_loop(attention: str) -> None:
    model = tiny_model(attention=attention, input_feeding=False)
    src, lengths, tgt_in = batch()
    state, memory = model.encode(src, lengths)
    assert model.decoder.runs_whole_sequence
    whole = model.decoder.whole_sequence(tgt_in, state, memory).logits
    slow = model.decoder.unroll(tgt_in, state, memory).logits
    assert torch.allclose(whole, slow, atol=1e-5)


def test_scheduled_sampling_feeds_the_models_own_predictions() -> None:
    model = tiny_model()
    src, lengths, tgt_in = batch()
    all_gold = torch.ones_like(tgt_in, dtype=torch.bool)
    assert torch.allclose(
        model(src, lengths, tgt_in, all_gold).logits, model(src, lengths, tgt_in).logits, atol=1e-6
    )
    # With no gold at all, each step must see the argmax of the step before: replay that by hand.
    logits = model(src, lengths, tgt_in, torch.zeros_like(all_gold)).logits
    state, memory = model.encode(src, lengths)
    prev = tgt_in[:, 0]
    for t in range(tgt_in.size(1)):
        step_logits, state = model.decoder.step(prev, state, memory)
        assert torch.allclose(step_logits, logits[:, t], atol=1e-5)
        prev = step_logits.argmax(-1)
    assert not torch.allclose(logits, model(src, lengths, tgt_in).logits, atol=1e-3)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bridge", ["bridge", "last", "zeros"])
def test_cells_and_bridges_build_and_run(cell: str, bridge: str) -> None:
    model = tiny_model(cell=cell, bridge=bridge, bidirectional=cell != "rnn")
    src, lengths, tgt_in = batch()
    logits = model(src, lengths, tgt_in).logits
    assert logits.shape == (2, 4, 15) and torch.isfinite(logits).all()
    log_probs, _ = model.step(tgt_in[:, 0], *model.encode(src, lengths))
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2))


def test_tied_embeddings_share_one_matrix() -> None:
    torch.manual_seed(0)
    config = ModelConfig(embedding_size=12, hidden_size=12, tied_embeddings=True)
    model = Seq2Seq(config, 20, 15)
    assert model.decoder.output.weight is model.decoder.embedding.weight


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_xavier_rnn_init_bounds_each_gate_and_biases_the_forget_gate(cell: str) -> None:
    config = ModelConfig(cell=cell, embedding_size=24, hidden_size=32, rnn_init="xavier", forget_bias=1.0)
    model = Seq2Seq(config, 50, 60)
    for rnn in (model.encoder.rnn, model.decoder.rnn):
        gates = rnn.weight_hh_l0.size(0) // rnn.hidden_size
        for name, parameter in rnn.named_parameters():
            if name.startswith("weight"):
                bound = math.sqrt(6.0 / (parameter.size(1) + parameter.size(0) // gates))
                assert parameter.abs().max() <= bound
                assert parameter.abs().max() > 0.9 * bound  # drawn over the whole range
            elif cell == "lstm" and name.startswith("bias_ih"):
                h = rnn.hidden_size
                assert torch.all(parameter[h : 2 * h] == 1.0)
                assert torch.all(parameter[:h] == 0) and torch.all(parameter[2 * h :] == 0)
            else:
                assert torch.all(parameter == 0)


@pytest.mark.parametrize("placement", ["output", "input"])
def test_dropout_placement_decides_where_training_noise_enters(placement: str) -> None:
    """Only model.dropout is on (one layer each, so none between layers): "output" drops the
    encoder states and the vector before the output layer; "input" leaves the encoder alone
    and drops the fed-back attentional vector and [h; c] before the combine layer."""
    torch.manual_seed(0)
    config = ModelConfig(
        embedding_size=16, hidden_size=16, encoder_layers=1, decoder_layers=1, dropout=0.5,
        dropout_placement=placement,
    )  # fmt: skip
    model = Seq2Seq(config, 30, 30).train()
    src, lengths = torch.randint(4, 30, (3, 7)), torch.tensor([7, 5, 2])
    first, second = (model.encoder(src, lengths).states for _ in range(2))
    assert torch.equal(first, second) == (placement == "input")
    decoder = model.decoder
    state, memory = model.encode(src, lengths)
    feed = torch.ones(3, 16)
    state.feed = feed
    fed: list[torch.Tensor] = []
    decoder.rnn.register_forward_hook(lambda _m, inputs, _o: fed.append(inputs[0][:, 0, 16:]))
    decoder.step(torch.full((3,), BOS_ID), state, memory)
    dropped_feed = bool(torch.any(fed[0] == 0))
    assert dropped_feed == (placement == "input")
    combined: list[torch.Tensor] = []
    decoder.combine.register_forward_hook(lambda _m, inputs, _o: combined.append(inputs[0]))
    decoder.step(torch.full((3,), BOS_ID), state, memory)
    rnn_output = combined[0][..., :16]  # h, nonzero almost surely unless dropped
    assert bool(torch.any(rnn_output == 0)) == (placement == "input")
    model.eval()
    assert torch.equal(*(model.encoder(src, lengths).states for _ in range(2)))


def test_torch_rnn_init_is_the_default() -> None:
    model = Seq2Seq(ModelConfig(embedding_size=24, hidden_size=32), 50, 60)
    assert model.decoder.rnn.bias_hh_l0.abs().max() > 0  # torch's uniform biases, untouched
