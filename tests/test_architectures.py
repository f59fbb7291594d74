"""Every cell x attention combination trains, saves, reloads and translates; hard attention's REINFORCE."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from seqcli.config import ATTENTIONS, CELLS, config_from_dict
from seqcli.loss import Reinforce, sequence_loss
from seqcli.model.attention import Memory
from seqcli.model.hard_attention import HardAttention, MixtureOutput
from seqcli.tasks import new_trainer
from seqcli.train import Trainer
from seqcli.translate import Translator

SYMBOLS = "abcdef"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a busy machine lose a lot to them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Silent:
    def on_start(self, max_steps: int, info: dict[str, object]) -> None: ...
    def on_step(self, step: int, loss: float, tokens_per_second: float, gold_probability: float) -> None: ...
    def on_evaluation(self, evaluation: object) -> None: ...
    def on_end(self, summary: object) -> None: ...
    def on_note(self, text: str) -> None: ...


@pytest.fixture(scope="module")
def copy_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copy 2-5 symbols out of 6: a task every combination can learn in a few hundred steps."""
    out = tmp_path_factory.mktemp("copy")
    rng = random.Random(0)
    for split, n in (("train", 1500), ("valid", 30)):
        lines = [" ".join(rng.choice(SYMBOLS) for _ in range(rng.randint(2, 5))) for _ in range(n)]
        for side in ("src", "tgt"):
            (out / f"{split}.{side}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def make_trainer(
    corpus: Path, run_dir: Path, cell: str, attention: str, steps: int, input_feeding: bool = True
) -> Trainer:
    config = config_from_dict(
        {
            "data": {"train": str(corpus / "train"), "valid": str(corpus / "valid")},
            "tokenizer": {"vocab_size": 20},
            "model": {
                "cell": cell,
                "attention": attention,
                "embedding_size": 16,
                "hidden_size": 32,
                "encoder_layers": 1,
                "decoder_layers": 1,
                "dropout": 0.0,
                "input_feeding": input_feeding,
            },
            "train": {
                "max_steps": steps,
                "eval_every": steps,
                "batch_tokens": 400,
                "learning_rate": 0.01,
                "label_smoothing": 0.0,
            },
            "decode": {"beam_size": 2},
        }
    )
    return new_trainer(config, run_dir, "cpu")


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_every_combination_trains_saves_reloads_and_translates(
    copy_task: Path, tmp_path: Path, cell: str, attention: str
) -> None:
    trainer = make_trainer(copy_task, tmp_path / "run", cell, attention, steps=3)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    summary = trainer.run(Silent())
    assert summary.steps == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))
    reloaded = Translator.from_run_dir(tmp_path / "run", {}, torch.device("cpu"))
    assert reloaded.model.config.cell == cell and reloaded.model.config.attention == attention
    loaded = reloaded.model.state_dict()
    assert all(torch.equal(tensor, loaded[name]) for name, tensor in trainer.model.state_dict().items())
    lines = ["a b c", "", "f e"]
    assert len(reloaded.translate_lines(lines)) == 3
    assert reloaded.translate_lines(lines)[1] == ""


# Exact match on the copy task after 300 updates of at most 400 tokens: attention copies
# (nearly) perfectly; the fixed context learns more slowly.
REQUIRED_EXACT_MATCH = {"general": 0.9, "dot": 0.9, "additive": 0.9, "none": 0.5, "hard": 0.9}


def exact_match(trainer: Trainer, corpus: Path) -> float:
    sources = (corpus / "valid.src").read_text(encoding="utf-8").splitlines()
    outputs = trainer.task.translator.translate_lines(sources, beam_size=1)
    return sum(o == s for o, s in zip(outputs, sources, strict=True)) / len(sources)


def test_lstm_with_attention_learns_to_copy_quickly(copy_task: Path, tmp_path: Path) -> None:
    """The fast member of the matrix below: no input feeding, so one RNN call per batch."""
    trainer = make_trainer(copy_task, tmp_path / "run", "lstm", "general", steps=150, input_feeding=False)
    trainer.run(Silent())
    assert exact_match(trainer, copy_task) >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_every_combination_learns_to_copy(copy_task: Path, tmp_path: Path, cell: str, attention: str) -> None:
    trainer = make_trainer(copy_task, tmp_path / "run", cell, attention, steps=300)
    trainer.run(Silent())
    assert exact_match(trainer, copy_task) >= REQUIRED_EXACT_MATCH[attention]


def _memory(values: torch.Tensor, mask: torch.Tensor, attention: HardAttention) -> Memory:
    return attention.make_memory(values, mask, values[:, 0])


def test_hard_attention_reads_out_a_mixture_of_each_positions_distribution() -> None:
    """p(y | h, x) = sum_j alpha_j softmax(W_o tanh(W_c [h; x_j])), worked out position by position."""
    torch.manual_seed(0)
    attention = HardAttention(4, 4)
    combine, output = torch.nn.Linear(8, 4, bias=False), torch.nn.Linear(4, 6)
    values, mask = torch.randn(2, 3, 4), torch.tensor([[True, True, False], [True, True, True]])
    memory = _memory(values, mask, attention)
    query = torch.randn(2, 5, 4)
    readout = attention.read_out(
        query, attention.attend(query, memory), memory, combine, torch.nn.Identity(), output
    )
    alpha = attention.attend(query, memory).weights
    assert alpha is not None and torch.all(alpha[0, :, 2] == 0)  # padding: no weight
    by_hand = sum(
        alpha[..., j : j + 1]
        * torch.softmax(
            output(torch.tanh(combine(torch.cat([query, values[:, j : j + 1].expand(-1, 5, -1)], -1)))), -1
        )
        for j in range(3)
    )
    assert torch.allclose(readout.logits.exp(), by_hand, atol=1e-6)
    assert torch.allclose(torch.logsumexp(readout.logits, -1), torch.zeros(2, 5), atol=1e-5)  # normalised
    real = torch.tensor([[True, True, False, False, False], [True, False, True, False, True]])
    only = attention.read_out(
        query, attention.attend(query, memory), memory, combine, torch.nn.Identity(), output, real
    )
    assert torch.allclose(only.logits, readout.logits[real], atol=1e-6)
    assert torch.allclose(only.components, readout.components[real], atol=1e-6)


def test_hard_attention_gradients_do_not_depend_on_the_order_of_additions() -> None:
    """Each sentence's memory is read at many target positions. With two threads its gradient
    must still be summed in a fixed order, as torch's deterministic algorithms sum it, bit for
    bit, so that training repeats exactly at any thread count."""
    torch.manual_seed(0)
    attention = HardAttention(32, 32)
    combine, output = torch.nn.Linear(64, 32, bias=False), torch.nn.Linear(32, 100)
    values = torch.randn(8, 12, 32, requires_grad=True)
    mask = torch.arange(12) < torch.tensor([12, 7, 12, 5, 9, 12, 11, 12]).unsqueeze(1)
    query, real = torch.randn(8, 40, 32), torch.rand(8, 40) < 0.8

    def gradient() -> torch.Tensor:
        values.grad = None
        memory = _memory(values, mask, attention)
        readout = attention.read_out(
            query, attention.attend(query, memory), memory, combine, torch.nn.Identity(), output, real
        )
        (readout.logits.logsumexp(-1).sum() + readout.logits[:, 3].sum()).backward()
        assert values.grad is not None
        return values.grad.clone()

    torch.set_num_threads(2)  # one_thread restores the count
    plain = gradient()
    torch.use_deterministic_algorithms(True)
    try:
        deterministic = gradient()
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(plain, deterministic)


def _rewarded_position_setup() -> tuple[
    HardAttention, torch.nn.Linear, torch.nn.Module, Memory, torch.Tensor
]:
    """Position 2 holds the state that makes the gold token (5) likely; the others do not."""
    torch.manual_seed(0)
    attention = HardAttention(4, 4)
    values = torch.eye(4).unsqueeze(0)  # (1, S=4, H=4): position s holds unit vector s
    combine = torch.nn.Linear(8, 4, bias=False)
    with torch.no_grad():
        combine.weight.zero_()
        combine.weight[:, 4:] = 3 * torch.eye(4)  # the attentional vector shows the position read
    output = torch.nn.Linear(4, 6)
    with torch.no_grad():
        output.weight.zero_()
        output.bias.zero_()
        output.weight[5, 2] = 4.0  # the gold token is likely only when read from position 2
    memory = _memory(values, torch.ones(1, 4, dtype=torch.bool), attention)
    return attention, combine, output, memory, torch.ones(1, 8, 4)  # query (1, T=8, 4)


@pytest.mark.parametrize("estimator", ["exact", "reinforce"])
def test_both_estimators_move_attention_towards_the_rewarded_position(estimator: str) -> None:
    attention, combine, output, memory, query = _rewarded_position_setup()
    targets = torch.full((8,), 5)
    objective = Reinforce(entropy_weight=0.0)
    sampler = torch.Generator().manual_seed(0)
    optimizer = torch.optim.SGD(attention.parameters(), lr=0.1)
    start = attention.attend(query, memory).weights[0, 0, 2].item()  # type: ignore[index]
    for _ in range(150):
        memory = _memory(memory.values, memory.mask, attention)
        readout = attention.read_out(
            query, attention.attend(query, memory), memory, combine, torch.nn.Identity(), output
        )
        readout = readout.at(torch.ones(1, 8, dtype=torch.bool))
        if estimator == "exact":
            loss = sequence_loss(readout.logits, targets, 0.0)
        else:
            _, loss = objective(readout, targets, 0.0, sampler)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    end = attention.attend(query, memory).weights[0, 0, 2].item()  # type: ignore[index]
    assert start < 0.4 and end > 0.9
    assert (objective.baseline is not None) == (estimator == "reinforce")


def test_the_entropy_bonus_pushes_towards_uniform() -> None:
    attention, combine, output, memory, query = _rewarded_position_setup()
    with torch.no_grad():
        output.weight.zero_()  # no reward anywhere: only the bonus moves the scores
        attention.key_projection.weight.copy_(torch.diag(torch.tensor([3.0, 0.0, 0.0, 0.0])))
    memory = _memory(memory.values, memory.mask, attention)  # keys with these weights
    readout = attention.read_out(
        query, attention.attend(query, memory), memory, combine, torch.nn.Identity(), output
    )
    real = torch.ones(1, 8, dtype=torch.bool)
    _, loss = Reinforce(entropy_weight=1.0)(
        readout.at(real), torch.full((8,), 5), 0.0, torch.Generator().manual_seed(0)
    )
    loss.backward()
    grad = attention.key_projection.weight.grad
    assert grad is not None and grad[0, 0] > 0  # lowering position 0's large score raises the entropy


def test_reinforce_runs_the_output_layer_at_the_sampled_positions_only() -> None:
    attention, combine, output, memory, query = _rewarded_position_setup()
    real, targets = torch.ones(1, 8, dtype=torch.bool), torch.full((8,), 5)
    shapes: list[tuple[int, ...]] = []
    output.register_forward_hook(lambda _module, inputs, _output: shapes.append(tuple(inputs[0].shape)))

    def read_out() -> MixtureOutput:
        attended = attention.attend(query, memory)
        return attention.read_out(query, attended, memory, combine, torch.nn.Identity(), output).at(real)

    loss, objective = Reinforce(entropy_weight=0.1)(
        read_out(), targets, 0.1, torch.Generator().manual_seed(3)
    )
    assert shapes == [(8, 4)]  # one position per target position, not all four of each
    objective.backward()
    assert attention.key_projection.weight.grad is not None  # the scores learn from the sample

    # The sampled read-out's loss is what every position's read-out gives at the same draws.
    mixture = read_out()
    chosen = torch.multinomial(
        mixture.log_weights.exp().detach(), 1, generator=torch.Generator().manual_seed(3)
    )
    picked = mixture.components[torch.arange(8), chosen.squeeze(1)]  # (8, V), from all (8, 4, V)
    assert shapes[-1] == (8, 4, 4)
    assert torch.allclose(sequence_loss(picked, targets, 0.1), loss)


def test_tied_embeddings_survive_save_and_reload(copy_task: Path, tmp_path: Path) -> None:
    trainer = make_trainer(copy_task, tmp_path / "run", "gru", "general", steps=3)
    config = replace(
        trainer.config, model=replace(trainer.config.model, embedding_size=32, tied_embeddings=True)
    )
    trainer = new_trainer(config, tmp_path / "tied", "cpu")
    trainer.run(Silent())
    reloaded = Translator.from_run_dir(tmp_path / "tied", {}, torch.device("cpu"))
    decoder = reloaded.model.decoder
    assert decoder.output.weight is decoder.embedding.weight
    assert torch.equal(decoder.output.weight, trainer.model.decoder.output.weight)
    lines = ["a b c", "f e d c"]
    assert reloaded.translate_lines(lines) == trainer.task.translator.translate_lines(lines)
