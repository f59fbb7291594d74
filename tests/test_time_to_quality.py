"""benchmarks/time_to_quality.py: the three rows are configured as its docstring says."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import time_to_quality as ttq  # noqa: E402

from seqcli.config import config_from_dict, config_to_dict, load_toml  # noqa: E402
from seqcli.tokenizer import Tokenizer, TokenizerSpec, train_sentencepiece  # noqa: E402


def test_joeynmt_rows_have_the_recipe_and_the_reference_architectures(tmp_path: Path) -> None:
    spm = tmp_path / "joint.spm"
    sentences = [f"ein Hund läuft {n} mal über die Wiese" for n in range(40)] + [
        "a dog runs over the meadow"
    ] * 40
    Tokenizer(train_sentencepiece(sentences, TokenizerSpec("unigram", 60))).save(spm)
    configs = ttq.joeynmt_rows(tmp_path, tmp_path / "data", spm, eval_every=300, batch_tokens=6400)
    ours = config_from_dict(load_toml(ttq.RECIPE))
    recipe, reference = (
        json.loads(configs[row].read_text()) for row in ("joeynmt-recipe", "joeynmt-reference")
    )
    model, encoder, decoder = recipe["model"], recipe["model"]["encoder"], recipe["model"]["decoder"]
    assert model["tied_embeddings"] and model["tied_softmax"]
    assert (
        encoder["bidirectional"]
        and 2 * encoder["hidden_size"] == decoder["hidden_size"] == ours.model.hidden_size
    )
    assert (encoder["num_layers"], decoder["num_layers"]) == (
        ours.model.encoder_layers,
        ours.model.decoder_layers,
    )
    assert encoder["embeddings"]["embedding_dim"] == ours.model.embedding_size
    assert encoder["embeddings"]["dropout"] == ours.model.embedding_dropout
    assert (decoder["attention"], decoder["input_feeding"], decoder["init_hidden"]) == (
        "luong",
        False,
        "bridge",
    )
    assert recipe["training"]["learning_rate"] == ours.train.learning_rate
    assert recipe["training"]["label_smoothing"] == ours.train.label_smoothing
    assert recipe["training"]["batch_size"] == 6400
    # The reference keeps its own architecture and batches.
    assert reference["model"]["decoder"]["input_feeding"] and not reference["model"]["tied_embeddings"]
    assert reference["model"]["decoder"]["hidden_size"] == 512 and reference["training"]["batch_size"] == 4096
    for row, config in (("joeynmt-recipe", recipe), ("joeynmt-reference", reference)):
        assert config["model_dir"] == str(tmp_path / f"{row}-run")
        assert config["training"]["validation_freq"] == 300
        assert config["data"]["src"]["voc_limit"] == Tokenizer.load(spm).vocab_size
        assert config["data"]["src"]["tokenizer_cfg"]["model_file"] == str(spm)


def test_seqcli_row_is_the_recipe_with_the_shared_model_and_the_budget(tmp_path: Path) -> None:
    spm, data = tmp_path / "joint.spm", tmp_path / "multi30k"
    row = config_to_dict(config_from_dict(load_toml(ttq.seqcli_recipe(tmp_path, data, spm, 20))))
    recipe = config_to_dict(config_from_dict(load_toml(ttq.RECIPE)))
    assert row["train"]["max_minutes"] == 20 and row["train"]["seed"] == 1
    assert (row["tokenizer"]["src_model"], row["tokenizer"]["tgt_model"]) == (str(spm), str(spm))
    assert row["data"]["train"] == str(data / "train")
    for section in ("model", "decode"):
        assert row[section] == recipe[section]
    unchanged = {"max_minutes", "seed"}
    assert {k: v for k, v in row["train"].items() if k not in unchanged} == {
        k: v for k, v in recipe["train"].items() if k not in unchanged
    }
