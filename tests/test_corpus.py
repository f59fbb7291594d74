from pathlib import Path

import pytest

from seqcli.corpus import Example, bucket_batches, collate, padding_fraction, random_batches, read_parallel
from seqcli.errors import DataError
from seqcli.tokenizer import BOS_ID, EOS_ID, PAD_ID


def make_examples(n: int) -> list[Example]:
    # Lengths 1..20 in a scrambled order.
    return [Example(src=[5] * (1 + (i * 7) % 20), tgt=[6] * (1 + (i * 11) % 20)) for i in range(n)]


def test_every_example_lands_in_exactly_one_batch_within_the_token_budget() -> None:
    examples = make_examples(500)
    batches = bucket_batches(examples, batch_tokens=200, seed=1)
    flat = sorted(i for batch in batches for i in batch)
    assert flat == list(range(500))
    for batch in batches:
        longest = max(max(len(examples[i].src), len(examples[i].tgt) + 1) for i in batch)
        assert longest * len(batch) <= 200 or len(batch) == 1


def test_batches_depend_only_on_the_seed() -> None:
    examples = make_examples(300)
    assert bucket_batches(examples, 150, seed=3) == bucket_batches(examples, 150, seed=3)
    assert bucket_batches(examples, 150, seed=3) != bucket_batches(examples, 150, seed=4)


def test_bucketing_keeps_padding_low() -> None:
    examples = make_examples(2000)
    batches = bucket_batches(examples, batch_tokens=400, seed=1)
    assert padding_fraction(examples, batches) < 0.1
    # Batches of the same size drawn without sorting would pad far more.
    unsorted = [list(range(i, min(i + 20, 2000))) for i in range(0, 2000, 20)]
    assert padding_fraction(examples, unsorted) > 0.3


def test_random_batches_fill_the_budget_with_real_tokens_of_mixed_lengths() -> None:
    examples = make_examples(1000)
    batches = random_batches(examples, batch_tokens=300, seed=2)
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    sizes = [sum(max(len(examples[i].src), len(examples[i].tgt) + 1) for i in batch) for batch in batches]
    assert all(size <= 300 for size in sizes)
    assert sum(sizes) / len(sizes) > 270  # nearly full: each batch stops only when the next pair will not fit
    spreads = [max(len(examples[i].tgt) for i in b) - min(len(examples[i].tgt) for i in b) for b in batches]
    assert min(spreads) >= 5  # every batch mixes short and long targets
    assert random_batches(examples, 300, seed=2) == batches
    assert random_batches(examples, 300, seed=3) != batches


def test_collate_adds_bos_and_eos_and_pads() -> None:
    batch = collate([Example([7, 8, 9], [10, 11]), Example([7], [12, 13, 14])])
    assert batch.src.tolist() == [[7, 8, 9], [7, PAD_ID, PAD_ID]]
    assert batch.src_lengths.tolist() == [3, 1]
    assert batch.tgt_in.tolist() == [[BOS_ID, 10, 11, PAD_ID], [BOS_ID, 12, 13, 14]]
    assert batch.tgt_out.tolist() == [[10, 11, EOS_ID, PAD_ID], [12, 13, 14, EOS_ID]]
    assert batch.n_tgt_tokens == 7


def test_parallel_files_must_align(tmp_path: Path) -> None:
    (tmp_path / "c.de").write_text("a\nb\nc\n")
    (tmp_path / "c.en").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"c\.de has 3 lines but .*c\.en has 2"):
        read_parallel(str(tmp_path / "c"), "de", "en")


def test_missing_and_empty_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"c\.de: file not found"):
        read_parallel(str(tmp_path / "c"), "de", "en")
    (tmp_path / "c.de").write_text("")
    with pytest.raises(DataError, match=r"c\.de: file is empty"):
        read_parallel(str(tmp_path / "c"), "de", "en")


def test_crlf_is_accepted_and_bad_bytes_are_located(tmp_path: Path) -> None:
    (tmp_path / "c.de").write_bytes(b"eins\r\nzwei\r\n")
    (tmp_path / "c.en").write_bytes(b"one\ntw\xffo\n")
    with pytest.raises(DataError, match=r"c\.en:2: invalid UTF-8 at byte 3"):
        read_parallel(str(tmp_path / "c"), "de", "en")
    (tmp_path / "c.en").write_bytes(b"one\ntwo\n")
    assert read_parallel(str(tmp_path / "c"), "de", "en") == (["eins", "zwei"], ["one", "two"])
    (tmp_path / "c.en").write_bytes(b"one\nt\x00wo\n")
    with pytest.raises(DataError, match=r"c\.en:2: NUL byte"):
        read_parallel(str(tmp_path / "c"), "de", "en")
