"""The token store: the training corpus as piece ids on disk, equal to encoding it in memory."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_resume import assert_same_outcome, default_settings, kill_and_resume, train_and_finish

from seqcli.config import Config
from seqcli.corpus import collate, encode_parallel, length_batches, make_batches
from seqcli.errors import DataError
from seqcli.store import TokenStore, write_store
from seqcli.tasks import new_trainer
from seqcli.tokenizer import Sampling, Tokenizer, TokenizerSpec, train_sentencepiece
from seqcli.translation_task import output_length_offset, usable_pairs


@pytest.fixture(scope="module")
def corpus(
    toy_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Tokenizer, list[str], list[str]]:
    folder = tmp_path_factory.mktemp("store")
    src = (toy_dir / "train.src").read_text(encoding="utf-8").splitlines()[:700]
    tgt = (toy_dir / "train.tgt").read_text(encoding="utf-8").splitlines()[:700]
    src[3], tgt[5] = "", ""  # empty sides are kept in the store, left out of batches
    (folder / "c.src").write_text("\n".join(src) + "\n", encoding="utf-8")
    (folder / "c.tgt").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    tokenizer = Tokenizer(train_sentencepiece(src + tgt, TokenizerSpec("unigram", 120)))
    return folder, tokenizer, src, tgt


def test_the_store_holds_the_ids_the_tokenizer_gives(
    corpus: tuple[Path, Tokenizer, list[str], list[str]],
) -> None:
    folder, tokenizer, src, tgt = corpus
    write_store(folder / "s", (folder / "c.src", folder / "c.tgt"), (tokenizer, tokenizer), chunk_lines=64)
    store = TokenStore(folder / "s")
    assert len(store) == 700
    for i, (s, t) in enumerate(zip(tokenizer.encode(src), tokenizer.encode(tgt), strict=True)):
        assert store[i].src == s and store[i].tgt == t
    assert store.lengths["src"][3] == 0 and store.lengths["tgt"][5] == 0
    assert store.matches((folder / "c.src", folder / "c.tgt"), (tokenizer, tokenizer))


def test_store_batches_equal_in_memory_batches(corpus: tuple[Path, Tokenizer, list[str], list[str]]) -> None:
    folder, tokenizer, src, tgt = corpus
    write_store(folder / "b", (folder / "c.src", folder / "c.tgt"), (tokenizer, tokenizer))
    store = TokenStore(folder / "b")
    usable, _ = usable_pairs(store.lengths["src"], store.lengths["tgt"], 0)
    in_memory = encode_parallel(src, tgt, tokenizer, tokenizer, 10**9).examples  # empty pairs dropped
    assert len(in_memory) == len(usable) == 698
    for batching in ("buckets", "random"):
        from_store = length_batches(store.lengths["src"], store.lengths["tgt"], batching, 300, 5, usable)
        from_memory = make_batches(in_memory, batching, 300, 5)
        assert len(from_store) == len(from_memory)
        for stored, memory in zip(from_store, from_memory, strict=True):
            a, b = collate([store[i] for i in stored]), collate([in_memory[i] for i in memory])
            assert all(torch.equal(x, y) for x, y in zip(vars(a).values(), vars(b).values(), strict=True))


def test_files_of_different_lengths_are_refused_and_leave_nothing(tmp_path: Path) -> None:
    (tmp_path / "c.src").write_text("a\nb\nc\n")
    (tmp_path / "c.tgt").write_text("a\nb\n")
    tokenizer = Tokenizer(train_sentencepiece(["a b c d e f g h i j k"] * 20, TokenizerSpec("char", 20)))
    run_dir = tmp_path / "run"
    with pytest.raises(DataError, match=r"c\.src has 3 lines but .*c\.tgt has 2: parallel files must align"):
        write_store(
            run_dir / "s", (tmp_path / "c.src", tmp_path / "c.tgt"), (tokenizer, tokenizer), chunk_lines=2
        )
    assert not run_dir.exists()  # not even the run directory it started


def test_pairs_left_out_are_counted_and_said() -> None:
    src, tgt = np.array([3, 0, 50, 7, 9]), np.array([4, 5, 6, 0, 80])
    usable, said = usable_pairs(src, tgt, 40)
    assert usable.tolist() == [0]
    assert said == [
        "2 of 5 training pairs (40.00%) have an empty side and are left out",
        "2 of 5 training pairs (40.00%) have a side longer than 40 pieces and are left out;"
        " --set data.max_tokens_per_sentence=0 keeps them",
    ]
    assert usable_pairs(src, tgt, 0)[0].tolist() == [0, 2, 4]


def test_the_output_limit_fits_the_longest_training_output() -> None:
    src, tgt = np.array([2, 9, 3]), np.array([40, 12, 4])  # 40 pieces from 2: a command to actions
    offset = output_length_offset(src, tgt, 1.5)
    assert offset == 40 + 1 - 3  # EOS included, ceil(1.5 x 2) = 3
    assert all(t + 1 <= np.ceil(1.5 * s) + offset for s, t in zip(src, tgt, strict=True))
    assert output_length_offset(np.array([10]), np.array([5]), 1.5) == 10  # never below the default


def test_a_run_stores_the_derived_output_limit(toy_dir: Path, tmp_path: Path) -> None:
    config = default_settings(toy_dir)
    trainer = new_trainer(config, tmp_path / "run", "cpu")
    store = trainer.task.store  # type: ignore[attr-defined]
    derived = trainer.config.decode.max_length_offset
    assert derived == output_length_offset(store.lengths["src"], store.lengths["tgt"], 1.5) >= 10
    translator = trainer.task.translator  # type: ignore[attr-defined]
    assert translator.decode.max_length_offset == derived  # validation searches as far


def test_sampled_segmentations_repeat_for_a_seed_and_spell_the_text(
    corpus: tuple[Path, Tokenizer, list[str], list[str]],
) -> None:
    from seqcli.store import SampledExamples

    folder, tokenizer, src, _ = corpus
    write_store(folder / "t", (folder / "c.src", folder / "c.tgt"), (tokenizer, tokenizer), keep_text=True)
    store = TokenStore(folder / "t")
    first = SampledExamples(store, (tokenizer, tokenizer), Sampling(0.1, -1, 11))
    again = SampledExamples(store, (tokenizer, tokenizer), Sampling(0.1, -1, 11))
    other = SampledExamples(store, (tokenizer, tokenizer), Sampling(0.1, -1, 12))
    assert [first[i].src for i in range(40)] == [again[i].src for i in range(40)]
    assert [first[i].src for i in range(40)] != [other[i].src for i in range(40)]
    assert tokenizer.decode([first[i].src for i in range(40)]) == [tokenizer.normalize(s) for s in src[:40]]


def test_a_run_with_subword_sampling_killed_mid_epoch_resumes_exactly(
    toy_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config: Config = default_settings(toy_dir)
    config = replace(config, tokenizer=replace(config.tokenizer, sampling_alpha=0.1))
    whole = tmp_path / "whole"
    train_and_finish(new_trainer(config, whole, "cpu"))
    from test_resume import outcome

    assert kill_and_resume(config, tmp_path / "run", "update", 9, monkeypatch)
    assert_same_outcome(tmp_path / "run", outcome(whole))
