"""The small-corpus levers: subword sampling, tied and shared embeddings, variational and word
dropout, the learning-rate schedules, and the end-of-training averaging and length-penalty tuning."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from test_training import SilentReporter, tiny_config

from seqcli import checkpoint
from seqcli.config import ModelConfig, config_from_dict
from seqcli.errors import ConfigError
from seqcli.finish import FINISH_FILE, finish_run, read_finish
from seqcli.lr_decay import scheduled_learning_rate
from seqcli.model.dropout import VariationalDropout
from seqcli.model.seq2seq import Seq2Seq
from seqcli.tasks import new_trainer
from seqcli.train import Trainer
from seqcli.translate import Translator
from seqcli.translation_task import drop_words
from seqcli.vocab import PAD_ID, UNK_ID


def _trainer(toy_dir: Path, run_dir: Path, tokenizer: dict | None = None, **train: object) -> Trainer:
    config = tiny_config(toy_dir, **train)
    if tokenizer:
        values = {
            "data": {"train": str(toy_dir / "train"), "valid": str(toy_dir / "valid")},
            "tokenizer": {"vocab_size": 100, "joint": True, **tokenizer},
            "model": {"embedding_size": 16, "hidden_size": 32, "encoder_layers": 1, "decoder_layers": 1},
            "train": {"batch_tokens": 800, "eval_every": 1000, **train},
        }
        config = config_from_dict(values)
    return new_trainer(config, run_dir, "cpu")  # type: ignore[arg-type]


def test_subword_sampling_redraws_each_epoch_and_repeats_for_the_same_epoch(
    toy_dir: Path, tmp_path: Path
) -> None:
    trainer = _trainer(toy_dir, tmp_path / "run", tokenizer={"sampling_alpha": 0.2})
    task = trainer.task
    best = [e.src for e in task.train_items]
    task.epoch_batches(1)
    first = [e.src for e in task.train_items]
    task.epoch_batches(2)
    second = [e.src for e in task.train_items]
    task.epoch_batches(1)
    again = [e.src for e in task.train_items]
    assert first == again  # a resume re-encodes epoch 1 the same way
    assert first != second and first != best
    # Every sampled segmentation still spells the same source sentence.
    assert task.src_tokenizer.decode(first[:50]) == task.src_tokenizer.decode(best[:50])
    # Validation keeps the best segmentation.
    valid = trainer.task.valid_data.examples
    assert [e.src for e in valid] == task.src_tokenizer.encode(task.valid_src)[: len(valid)]


def test_three_way_tying_shares_one_matrix_and_survives_a_checkpoint(toy_dir: Path, tmp_path: Path) -> None:
    config = ModelConfig(embedding_size=32, hidden_size=32, tied_embeddings=True, shared_embeddings=True)
    model = Seq2Seq(config, 100, 100)
    untied = Seq2Seq(ModelConfig(embedding_size=32, hidden_size=32), 100, 100)
    assert model.encoder.embedding.weight is model.decoder.output.weight
    assert untied.count_parameters() - model.count_parameters() == 2 * 100 * 32
    narrow = Seq2Seq(ModelConfig(embedding_size=16, hidden_size=32, tied_embeddings=True), 100, 100)
    assert narrow.decoder.output[1].weight is narrow.decoder.embedding.weight  # after a 32 -> 16 map
    assert narrow.decoder.step(torch.tensor([2]), *_start(narrow))[0].shape == (1, 100)
    with pytest.raises(ConfigError, match="joint vocabulary"):
        Seq2Seq(ModelConfig(embedding_size=32, hidden_size=32, shared_embeddings=True), 100, 90)
    trained = new_trainer(
        config_from_dict(
            {
                "data": {"train": str(toy_dir / "train"), "valid": str(toy_dir / "valid")},
                "tokenizer": {"vocab_size": 100},
                "model": {
                    "embedding_size": 32,
                    "hidden_size": 32,
                    "encoder_layers": 1,
                    "decoder_layers": 1,
                    "tied_embeddings": True,
                    "shared_embeddings": True,
                },
                "train": {"batch_tokens": 800, "eval_every": 1000, "max_steps": 3},
            }
        ),
        tmp_path / "run",
        device="cpu",
    )
    trained.run(SilentReporter())
    translator = Translator.from_run_dir(tmp_path / "run", {"beam_size": 1}, torch.device("cpu"))
    loaded = translator.model
    assert loaded.encoder.embedding.weight is loaded.decoder.output.weight
    assert torch.equal(loaded.encoder.embedding.weight, trained.model.encoder.embedding.weight)


def _start(model: Seq2Seq) -> tuple:
    return model.encode(torch.tensor([[5, 6, 7]]), torch.tensor([3]))


def test_variational_dropout_keeps_one_mask_along_the_sequence() -> None:
    torch.manual_seed(0)
    drop = VariationalDropout(0.5)
    out = drop(torch.ones(4, 7, 10))
    zeros = out == 0
    assert zeros.any() and (~zeros).any()
    assert torch.equal(zeros, zeros[:, :1, :].expand_as(zeros))  # the same units at every step
    assert torch.allclose(out[~zeros], torch.tensor(2.0))  # kept units scaled by 1 / (1 - p)
    drop.eval()
    assert torch.equal(drop(torch.ones(4, 7, 10)), torch.ones(4, 7, 10))
    model = Seq2Seq(ModelConfig(variational_dropout=True, embedding_dropout=0.1), 50, 50)
    assert isinstance(model.encoder.output_dropout, VariationalDropout)
    assert isinstance(model.decoder.embedding_dropout, VariationalDropout)


def test_word_dropout_replaces_real_tokens_only_at_about_its_rate() -> None:
    src = torch.randint(4, 50, (200, 30))
    src[:, 20:] = PAD_ID
    dropped = drop_words(src, 0.25, torch.Generator().manual_seed(0))
    changed = dropped != src
    assert torch.all(dropped[changed] == UNK_ID)
    assert not changed[:, 20:].any()  # padding stays padding
    assert 0.22 < changed[:, :20].float().mean().item() < 0.28


def test_learning_rate_schedules() -> None:
    warm = [scheduled_learning_rate(1.0, s, "inverse_sqrt", 4, 0.0, 0.0) for s in range(16)]
    assert warm[:4] == [0.25, 0.5, 0.75, 1.0]  # linear warm-up to the peak
    assert warm[15] == pytest.approx(math.sqrt(4 / 16))
    assert all(a >= b for a, b in zip(warm[3:], warm[4:], strict=False))
    cosine = [scheduled_learning_rate(1.0, 100, "cosine", 0, p, 0.1) for p in (0.0, 0.5, 1.0, 1.5)]
    assert cosine == pytest.approx([1.0, 0.55, 0.1, 0.1])
    assert scheduled_learning_rate(0.5, 1, "constant", 4, 0.9, 0.0) == pytest.approx(0.25)


def test_the_schedule_sets_the_optimizer_rate_each_update(toy_dir: Path, tmp_path: Path) -> None:
    trainer = _trainer(toy_dir, tmp_path / "run", max_steps=6, lr_schedule="inverse_sqrt", warmup_steps=3)
    rates = []
    step = trainer.train_update

    def recording(batches: list, at: int) -> tuple[float, int]:
        rates.append(trainer.optimizer.param_groups[0]["lr"])
        return step(batches, at)

    trainer.train_update = recording  # type: ignore[method-assign]
    trainer.run(SilentReporter())
    lr = trainer.config.train.learning_rate
    assert rates == pytest.approx(
        [lr / 3, 2 * lr / 3, lr, lr * math.sqrt(3 / 4), lr * math.sqrt(3 / 5), lr * math.sqrt(3 / 6)]
    )


def test_training_ends_by_averaging_and_tuning_the_length_penalty(toy_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trainer = _trainer(
        toy_dir,
        run_dir,
        max_steps=40,
        eval_every=10,
        keep_checkpoints=3,
        average_last=3,
        tune_length_penalty="0,2",
    )
    notes: list[str] = []
    reporter = SilentReporter()
    reporter.on_note = notes.append  # type: ignore[method-assign]
    trainer.run(reporter)
    finish_run(trainer, reporter)
    found = json.loads((run_dir / FINISH_FILE).read_text())
    assert read_finish(run_dir) == found
    assert read_finish(tmp_path / "not-finished") == {}
    averaging = found["averaging"]
    assert averaging["checkpoints"] == [
        "step-00000020.safetensors",
        "step-00000030.safetensors",
        "step-00000040.safetensors",
    ]
    best_info = checkpoint.load_run(run_dir, checkpoint.BEST).info
    assert ("averaged" in best_info) == averaging["kept"]
    log_best = max(record["valid_bleu"] for record in checkpoint.read_log(run_dir))
    assert averaging["kept"] == (averaging["valid_bleu"] > log_best)
    # A resume goes on from the best score including the mean's.
    saved = checkpoint.load_training_state(run_dir).loop
    assert saved["best_value"] == max(log_best, averaging["valid_bleu"])
    tuned = found["length_penalty"]
    assert set(tuned["valid_bleu"]) == {"0", "2"}
    assert tuned["valid_bleu"][f"{tuned['chosen']:g}"] == max(tuned["valid_bleu"].values())
    assert checkpoint.load_config(run_dir).decode.length_penalty == tuned["chosen"]
    assert any("length penalty" in note for note in notes)
    # The in-memory model is left as training left it: the last weights.
    last = checkpoint.load_run(run_dir, checkpoint.LAST).tensors
    assert all(
        torch.equal(last[name], tensor) for name, tensor in checkpoint.unique_tensors(trainer.model).items()
    )


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("train", {"average_last": 4, "keep_checkpoints": 2}, "keep_checkpoints >= 4"),
        ("train", {"tune_length_penalty": "0,x"}, "comma-separated"),
        ("train", {"lr_schedule": "cosine", "lr_decay_factor": 0.5}, "use one"),
        ("tokenizer", {"type": "char", "sampling_alpha": 0.2}, "unigram or bpe"),
        ("tokenizer", {"sampling_nbest": 0}, "sampling_nbest"),
    ],
)
def test_lever_settings_that_cannot_work_are_refused(section: str, values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict({section: values})


def test_set_takes_a_list_of_alphas_as_text() -> None:
    from seqcli.cli.train import parse_set

    assert parse_set(["train.tune_length_penalty=0,0.4,1"]) == {"train": {"tune_length_penalty": "0,0.4,1"}}
    config = config_from_dict(parse_set(["train.tune_length_penalty=0,0.4,1"]))
    assert config.train.tune_length_penalty == "0,0.4,1"
