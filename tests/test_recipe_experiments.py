"""experiments/multi30k_cpu.py: every ablation row is a valid `seqcli train` command that
changes what its row says, on top of the untied base recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import seqcli.cli.training
from experiments.multi30k_cpu import BASE_RECIPE, ROWS, levers_command
from seqcli.cli import app
from seqcli.config import Config, config_from_dict, load_toml


def _config_of(args: list[str], monkeypatch: pytest.MonkeyPatch) -> Config:
    seen: list[Config] = []
    monkeypatch.setattr(seqcli.cli.training, "run_training", lambda config, *_: seen.append(config))
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{result.output}{result.exception}"
    return seen[0]


@pytest.mark.parametrize("row", list(ROWS))
def test_each_lever_row_trains_the_base_with_its_change(
    row: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "base.toml").write_text(BASE_RECIPE)
    base = config_from_dict(load_toml(tmp_path / "base.toml"))
    assert (base.model.embedding_size, base.model.tied_embeddings, base.train.average_last) == (128, False, 5)
    config = _config_of(levers_command(row, tmp_path / "data", tmp_path / row, 15)[1:], monkeypatch)
    assert config.train.max_minutes == 15
    changed = {
        f"{section}.{name}"
        for section in ("tokenizer", "model", "train")
        for name, value in vars(getattr(config, section)).items()
        if value != getattr(getattr(base, section), name)
    } - {"train.max_minutes"}
    expected = {
        "base-fp32": {"train.bf16"},
        "base-bf16": set(),
        "sampling": {"tokenizer.sampling_alpha"},
        "tied+hidden-512": {"model.hidden_size"},
    }.get(row)
    tied = {"model.embedding_size", "model.tied_embeddings", "model.shared_embeddings"}
    if row.startswith("tied"):
        assert tied <= changed
        changed -= tied
        expected = (
            expected
            if expected is not None
            else {
                "tied": set(),
                "tied+dropout": {
                    "model.variational_dropout",
                    "model.embedding_dropout",
                    "train.word_dropout",
                },
                "tied+cosine": {"train.lr_schedule", "train.warmup_steps", "train.min_learning_rate"},
                "tied+sampling": {"tokenizer.sampling_alpha"},
                "tied+inverse-sqrt": {"train.lr_schedule", "train.warmup_steps"},
            }[row]
        )
    assert changed == expected
