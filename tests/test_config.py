from pathlib import Path

import pytest

from seqcli.config import Config, config_from_dict, config_to_dict, dumps_toml, load_toml, merge
from seqcli.errors import ConfigError


def test_defaults_round_trip_through_toml(tmp_path: Path) -> None:
    config = Config()
    path = tmp_path / "c.toml"
    path.write_text(dumps_toml(config_to_dict(config)))
    assert config_from_dict(load_toml(path)) == config


def test_flags_override_the_file_and_none_means_not_given() -> None:
    base = {"model": {"cell": "gru", "hidden_size": 64}, "train": {"seed": 3}}
    flags = {"model": {"cell": "rnn", "hidden_size": None}, "train": {"seed": None}}
    config = config_from_dict(merge(base, flags))
    assert config.model.cell == "rnn"
    assert config.model.hidden_size == 64
    assert config.train.seed == 3


def test_strings_with_quotes_survive_toml(tmp_path: Path) -> None:
    config = config_from_dict({"data": {"train": 'a "quoted" \\ path'}})
    path = tmp_path / "c.toml"
    path.write_text(dumps_toml(config_to_dict(config)))
    assert config_from_dict(load_toml(path)).data.train == 'a "quoted" \\ path'


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"model": {"cell": "transformer"}}, "model.cell: 'transformer' is not one of"),
        ({"model": {"dropout_placement": "middle"}}, "model.dropout_placement: 'middle' is not one of"),
        ({"train": {"batching": "sorted"}}, "train.batching: 'sorted' is not one of"),
        ({"model": {"hidden_sise": 3}}, "model.hidden_sise: unknown option"),
        ({"modle": {}}, "modle: unknown section"),
        ({"train": {"max_steps": "many"}}, "train.max_steps: expected int"),
        ({"train": {"max_steps": True}}, "train.max_steps: expected int"),
        ({"train": {"label_smoothing": 1.5}}, "train.label_smoothing: 1.5 must be between"),
        ({"decode": {"beam_size": 2, "n_best": 3}}, "decode.n_best: 3 exceeds beam_size 2"),
        ({"train": {"teacher_forcing": "exponential", "tf_k": 2.0}}, "train.tf_k"),
    ],
)
def test_bad_values_name_their_field(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        config_from_dict(values)


def test_ints_are_accepted_for_floats() -> None:
    assert config_from_dict({"train": {"learning_rate": 1}}).train.learning_rate == 1.0


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[model\ncell = ")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_toml(path)


def test_the_names_config_accepts_are_the_models_tables() -> None:
    from seqcli import config
    from seqcli.model.cells import CELLS
    from seqcli.model.parts import ATTENTIONS

    assert set(config.CELLS) == set(CELLS)
    assert set(config.ATTENTIONS) == set(ATTENTIONS)
