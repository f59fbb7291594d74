"""`seqcli train` without a config file: a preset chosen from the device and the corpus size."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import seqcli.cli.training
from seqcli.cli import app
from seqcli.config import Config, config_from_dict, config_to_dict, load_toml
from seqcli.errors import ConfigError
from seqcli.levels import subword_vocabulary
from seqcli.presets import (
    EPOCHS_PER_EVALUATION,
    MIN_UPDATES_PER_EPOCH,
    PIECES_PER_TOKEN,
    PRESETS,
    Corpus,
    choose_preset,
    fit_to_corpus,
    preset_config,
)


def _train(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[Config | None, str, int]:
    """`seqcli train ARGS --out unused` in process: the config it would train, its output, exit code."""
    seen: list[tuple[Config, str]] = []

    def run_training(config: Config, out: object, resume: object, device: str, note: str = "") -> None:
        seen.append((config, note))  # note: the line training says on stderr once it has started

    monkeypatch.setattr(seqcli.cli.training, "run_training", run_training)
    result = CliRunner().invoke(app, ["train", *args, "--out", "unused"])
    error = f"{result.exception}" if result.exception else ""  # seqcli's main prints it as one line
    if not seen:
        return None, result.output + error, result.exit_code
    return seen[0][0], result.output + error + seen[0][1], result.exit_code


def _corpus(tmp_path: Path, pairs: int) -> str:
    """pairs lines per side of natural-language-like text: an open vocabulary, most words rare."""
    for lang in ("de", "en"):
        lines = (f"ein satz {lang}{n} mit wort{n % 97}\n" for n in range(pairs))
        (tmp_path / f"train.{lang}").write_text("".join(lines), encoding="utf-8")
    return str(tmp_path / "train")


def test_without_a_config_the_cpu_gets_the_small_preset_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    train = _corpus(tmp_path, 30_000)
    args = ("--train", train, "--valid", train, "--src-lang", "de", "--tgt-lang", "en", "--device", "cpu")
    config, output, code = _train(monkeypatch, *args)
    assert code == 0, output
    assert config is not None
    assert (
        "preset cpu-small" in output and "30,000 training pairs" in output and "--preset gpu-base" in output
    )
    assert config.model.hidden_size == PRESETS["cpu-small"]["model"]["hidden_size"]
    assert config.tokenizer.vocab_size == 4000
    # A flag beats the preset; the preset fills in the rest.
    config, _, _ = _train(monkeypatch, *args, "--hidden-size", "384")
    assert config is not None and config.model.hidden_size == 384
    assert config.model.tied_embeddings == PRESETS["cpu-small"]["model"]["tied_embeddings"]


def test_a_config_file_takes_no_preset_unless_one_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    train = _corpus(tmp_path, 100)
    toml = tmp_path / "c.toml"
    toml.write_text(
        f'[data]\ntrain = "{train}"\nvalid = "{train}"\nsrc_lang = "de"\ntgt_lang = "en"\n'
        "[model]\nhidden_size = 64\n"
    )
    config, output, _ = _train(monkeypatch, "--config", str(toml))
    assert config is not None and "preset" not in output
    assert config.model.input_feeding is True  # the defaults
    assert "tokenizer unigram, 2,000 pieces" in output  # the vocabulary still comes from the data
    config, output, _ = _train(monkeypatch, "--config", str(toml), "--preset", "cpu-small")
    assert config is not None and "preset cpu-small" in output
    assert config.model.hidden_size == 64  # the file beats the preset
    assert config.model.input_feeding is False and config.tokenizer.vocab_size == 2000


def test_unknown_presets_and_presets_on_a_resume_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _, output, code = _train(monkeypatch, "--preset", "huge")
    assert code != 0 and "--preset huge: expected one of auto, cpu-small, gpu-base" in output
    result = CliRunner().invoke(app, ["train", "--resume", "somewhere", "--preset", "cpu-small"])
    assert result.exit_code != 0
    assert "--preset cpu-small: a resumed run keeps its stored settings" in str(result.exception)


def test_separate_vocabularies_keep_the_preset_from_sharing_embeddings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    train = _corpus(tmp_path, 100)
    config, _, code = _train(monkeypatch, "--train", train, "--valid", train, "--separate", "--device", "cpu")
    assert code == 0 and config is not None
    assert config.model.tied_embeddings and not config.model.shared_embeddings
    with pytest.raises(ConfigError, match="needs tokenizer.joint"):
        config_from_dict({"tokenizer": {"joint": False}, "model": {"shared_embeddings": True}})


def test_the_choice_follows_device_and_corpus_size() -> None:
    assert choose_preset("cuda", 29_000) == "gpu-base"
    assert choose_preset("cuda", 2_000) == "cpu-small"  # too little data for the base model
    assert choose_preset("cpu", 500_000) == "cpu-small"
    assert [subword_vocabulary(n) for n in (5_000, 29_000, 110_000)] == [2000, 4000, 8000]
    assert preset_config("gpu-base") == {}


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "configs").glob("*.toml")), ids=lambda p: p.name
)
def test_every_shipped_config_loads(path: Path) -> None:
    config = config_from_dict(load_toml(path))
    assert config.data.src_lang != config.data.tgt_lang


def test_cpu_small_is_the_cpu_recipe_without_its_data_and_budget() -> None:
    recipe = config_to_dict(
        config_from_dict(load_toml(Path(__file__).parents[1] / "configs" / "multi30k-de-en-cpu.toml"))
    )
    preset = config_to_dict(config_from_dict(preset_config("cpu-small")))
    assert preset["model"] == recipe["model"]
    differing = {name for name in recipe["train"] if recipe["train"][name] != preset["train"][name]}
    assert differing == {"max_minutes", "max_steps"}  # the recipe's budget


def test_a_small_corpus_gets_small_batches_and_regular_evaluations(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    train = _corpus(tmp_path, 2_000)  # 5 tokens a pair: 10,000 tokens
    args = ("--train", train, "--valid", train, "--src-lang", "de", "--tgt-lang", "en", "--device", "cpu")
    config, output, code = _train(monkeypatch, *args)
    assert code == 0 and config is not None, output
    train_config = config.train
    updates_per_epoch = 10_000 * PIECES_PER_TOKEN["unigram"] / train_config.batch_tokens
    assert train_config.batch_tokens < PRESETS["cpu-small"]["train"]["batch_tokens"]
    assert updates_per_epoch >= MIN_UPDATES_PER_EPOCH - 1
    assert train_config.eval_every <= EPOCHS_PER_EVALUATION * (updates_per_epoch + 1)
    assert train_config.warmup_steps <= train_config.eval_every
    assert config.model.hidden_size == PRESETS["cpu-small"]["model"]["hidden_size"]  # the width stays
    line = next(line for line in output.splitlines() if "sizes from the corpus" in line)
    assert "10,000 tokens" in line and f"batches of {train_config.batch_tokens:,} tokens" in line
    assert f"every {train_config.eval_every:,} updates" in line and "--batch-tokens" in line
    # What the user gives is kept, and the rest still fits the corpus.
    config, _, _ = _train(monkeypatch, *args, "--eval-every", "77")
    assert config is not None and config.train.eval_every == 77
    assert config.train.batch_tokens == train_config.batch_tokens


def test_a_corpus_of_some_size_keeps_the_presets_sizes() -> None:
    values = preset_config("cpu-small")
    note = fit_to_corpus(values, Corpus(pairs=29_000, tokens=377_000), "unigram", given={})
    assert values == {**preset_config("cpu-small")}
    assert "batches of 3,000 tokens, an evaluation every 400 updates;" in note
    symbols = preset_config("cpu-small")
    fit_to_corpus(
        symbols, Corpus(pairs=40_000, tokens=50_000), "word", given={"train": {"batch_tokens": 700}}
    )
    assert symbols["train"]["batch_tokens"] == 700 and symbols["model"] == preset_config("cpu-small")["model"]
