from pathlib import Path

import pytest

from seqcli.errors import DataError
from seqcli.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer, TokenizerSpec, train_sentencepiece

TEXT = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "Die Katze saß auf der Matte",
    "ein Hund lief im Park",
] * 30


@pytest.mark.parametrize("kind", ["unigram", "bpe", "char"])
def test_each_type_trains_and_round_trips(kind: str) -> None:
    tokenizer = Tokenizer(train_sentencepiece(TEXT, TokenizerSpec(kind, 60)))
    lines = ["the cat ran in the park", "Die Katze lief", ""]
    ids = tokenizer.encode(lines)
    assert ids[2] == []
    assert all(i not in (PAD_ID, BOS_ID, EOS_ID) for seq in ids for i in seq)
    assert tokenizer.decode(ids) == lines
    assert tokenizer.decode_pieces(tokenizer.encode_pieces(lines)) == lines


def test_vocabulary_size_is_a_soft_limit_on_small_data() -> None:
    tokenizer = Tokenizer(train_sentencepiece(TEXT, TokenizerSpec("unigram", 5000)))
    assert 10 < tokenizer.vocab_size < 5000


def test_special_ids_are_fixed() -> None:
    tokenizer = Tokenizer(train_sentencepiece(TEXT, TokenizerSpec("unigram", 50)))
    assert tokenizer.pieces_to_ids(["<pad>", "<unk>", "<s>", "</s>"]) == [PAD_ID, UNK_ID, BOS_ID, EOS_ID]


def test_unknown_characters_map_to_unk_instead_of_failing() -> None:
    tokenizer = Tokenizer(train_sentencepiece(TEXT, TokenizerSpec("unigram", 50)))
    assert UNK_ID in tokenizer.encode(["猫"])[0]


def test_save_load_and_hash(tmp_path: Path) -> None:
    tokenizer = Tokenizer(train_sentencepiece(TEXT, TokenizerSpec("bpe", 50)))
    tokenizer.save(tmp_path / "m.spm")
    loaded = Tokenizer.load(tmp_path / "m.spm")
    assert loaded.sha256 == tokenizer.sha256
    assert loaded.encode(["the cat"]) == tokenizer.encode(["the cat"])


def test_a_file_that_is_no_model_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bogus.spm"
    path.write_bytes(b"not a model")
    with pytest.raises(DataError, match="bogus.spm: not a SentencePiece model"):
        Tokenizer.load(path)
    with pytest.raises(DataError, match="missing.spm: SentencePiece model not found"):
        Tokenizer.load(tmp_path / "missing.spm")
