"""Every cell x attention combination trains, saves, reloads and translates; hard attention's REINFORCE."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from seqcli.config import ATTENTIONS, CELLS, config_from_dict
from seqcli.loss import HardAttentionObjective, sequence_loss
from seqcli.model.hard_attention import HardAttention, PositionChoice
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


# Exact match on the copy task after 300 updates of at most 400 tokens: soft attention copies
# (nearly) perfectly; the fixed context and the sampled position learn more slowly.
REQUIRED_EXACT_MATCH = {"general": 0.9, "dot": 0.9, "additive": 0.9, "none": 0.5, "hard": 0.5}


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


def test_hard_attention_samples_in_training_and_takes_the_argmax_in_eval() -> None:
    torch.manual_seed(0)
    attention = HardAttention(4, 4)
    values = torch.randn(1, 3, 4)
    mask = torch.tensor([[True, True, False]])
    query = torch.randn(1, 200, 4)
    context, weights, choice = attention(query, attention.project_keys(values), values, mask)
    picked = (context.unsqueeze(2) == values.unsqueeze(1)).all(-1).float().argmax(-1)  # (1, 200)
    assert set(picked.unique().tolist()) == {0, 1}  # both real positions sampled, padding never
    assert torch.allclose(choice.log_prob, weights.log().gather(2, picked.unsqueeze(-1)).squeeze(-1))
    attention.eval()
    context, weights, _ = attention(query, attention.project_keys(values), values, mask)
    assert torch.equal(context, values[0, weights.argmax(-1)[0]].unsqueeze(0))


def test_reinforce_term_moves_attention_towards_the_rewarded_position() -> None:
    """Position 2 holds the state that makes the gold token likely; REINFORCE alone must find it."""
    torch.manual_seed(0)
    attention = HardAttention(4, 4)
    values = torch.eye(4).unsqueeze(0)  # (1, S=4, H=4): position s holds unit vector s
    mask = torch.ones(1, 4, dtype=torch.bool)
    query = torch.ones(1, 8, 4)  # (1, T=8, 4)
    tgt_out = torch.full((1, 8), 5)
    objective = HardAttentionObjective(entropy_weight=0.0)
    optimizer = torch.optim.SGD(attention.parameters(), lr=0.1)
    start = attention(query, attention.project_keys(values), values, mask)[1][0, 0, 2].item()
    for _ in range(150):
        context, _, choice = attention(query, attention.project_keys(values), values, mask)
        logits = torch.zeros(1, 8, 6)
        logits[..., 5] = 4.0 * context[..., 2]  # the gold token is likely only after position 2
        # Through the context alone no gradient reaches the scores: only REINFORCE moves them.
        assert not sequence_loss(logits, tgt_out, 0.0).requires_grad
        optimizer.zero_grad()
        objective(choice, logits, tgt_out).backward()
        optimizer.step()
    end = attention(query, attention.project_keys(values), values, mask)[1][0, 0, 2].item()
    assert start < 0.4 and end > 0.9
    assert objective.baseline is not None


def test_entropy_bonus_pushes_towards_uniform() -> None:
    weights = torch.tensor([[[0.9, 0.05, 0.05]]], requires_grad=True)
    log_p = weights.log()
    entropy = -(weights * log_p).sum(-1)
    choice = PositionChoice(log_p[..., 0].detach(), entropy)
    loss = HardAttentionObjective(entropy_weight=1.0)(choice, torch.zeros(1, 1, 5), torch.tensor([[4]]))
    loss.backward()
    assert weights.grad is not None and weights.grad[0, 0, 0] > weights.grad[0, 0, 1]


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
