"""`seqcli train` options come from the config fields' declarations: flags, help, choices, merge order."""

from __future__ import annotations

from dataclasses import Field, fields
from pathlib import Path
from typing import Any, get_type_hints

import pytest
import typer
from typer.testing import CliRunner

import seqcli.cli.training
from seqcli.cli import app
from seqcli.cli.train import flagged_fields
from seqcli.config import Config, config_from_dict
from seqcli.errors import ConfigError


def _train_click_command() -> Any:
    return typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]


def _run_train(monkeypatch: pytest.MonkeyPatch, *args: str) -> Config:
    """Invoke `seqcli train ARGS --out X` in process; returns the config handed to run_training."""
    seen: list[Config] = []
    monkeypatch.setattr(seqcli.cli.training, "run_training", lambda config, *_: seen.append(config))
    result = CliRunner().invoke(app, ["train", *args, "--out", "unused"])
    assert result.exit_code == 0, result.output
    return seen[0]


def _other_value(spec: Field[Any], kind: type) -> Any:
    """A valid value different from the field's default, in its type."""
    if spec.metadata.get("choices"):
        return next(c for c in spec.metadata["choices"] if c != spec.default)
    if kind is bool:
        return not spec.default
    if kind is int:
        return spec.default * 2 if spec.default else 64
    if kind is float:
        return spec.default / 2 if spec.default else 0.5
    return "some/path"


def _as_args(spec: Field[Any], value: Any) -> list[str]:
    flag = spec.metadata["flag"]
    if isinstance(value, bool):
        on, _, off = flag.partition("/")
        return [on if value else off]
    return [flag, str(value)]


def test_every_flag_and_every_choice_is_in_the_help() -> None:
    params = {
        opt: param for param in _train_click_command().params for opt in param.opts + param.secondary_opts
    }
    for _, spec, _ in flagged_fields():
        for flag in spec.metadata["flag"].split("/"):
            assert flag in params, flag
        help_text = params[spec.metadata["flag"].split("/")[0]].help
        assert spec.metadata["help"] in help_text
        for choice in spec.metadata.get("choices") or ():
            assert choice in help_text, (spec.name, choice)
    written = {"--config", "--out", "--resume", "--set", "--device", "--lr", "--tokenizer-type", "--src-spm"}
    assert written | {"--joint", "--separate", "--unidirectional", "--no-input-feeding"} <= set(params)


def test_rendered_help_shows_choices() -> None:
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "One of: lstm, gru, rnn, mingru, minlstm." in result.output
    assert "[data] [tokenizer] [model]" in result.output  # square brackets are not eaten as markup


def test_every_flag_reaches_its_config_field(monkeypatch: pytest.MonkeyPatch) -> None:
    expected: dict[tuple[str, str], Any] = {}
    args: list[str] = []
    for section, spec, kind in flagged_fields():
        value = _other_value(spec, kind)
        expected[section, spec.name] = value
        args += _as_args(spec, value)
    config = _run_train(monkeypatch, *args)
    for (section, name), value in expected.items():
        assert getattr(getattr(config, section), name) == value, f"{section}.{name}"


def test_set_beats_flags_beat_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[model]\ncell = "gru"\nhidden_size = 64\n[train]\nseed = 5\nlearning_rate = 0.1\n')
    config = _run_train(
        monkeypatch, "--config", str(path), "--cell", "rnn", "--set", "model.cell=lstm", "--lr", "0.2"
    )
    assert config.model.cell == "lstm"  # --set over the flag over the file
    assert config.train.learning_rate == 0.2  # the flag over the file
    assert (config.model.hidden_size, config.train.seed) == (64, 5)  # the file where nothing else is given


def test_choice_errors_list_the_declared_choices() -> None:
    checked = 0
    for section in fields(Config):
        for spec in fields(get_type_hints(Config)[section.name]):
            choices = spec.metadata.get("choices")
            if choices is None:
                continue
            with pytest.raises(ConfigError) as raised:
                config_from_dict({section.name: {spec.name: "nonsense"}})
            assert (
                str(raised.value)
                == f"{section.name}.{spec.name}: 'nonsense' is not one of {', '.join(choices)}"
            )
            checked += 1
    assert checked >= 9  # task, tokenizer type, cell, attention, bridge, dropout_placement, rnn_init, ...
