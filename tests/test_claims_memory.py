"""The memory-over-distance experiment: its task, its stepped encoder and a tiny run end to end."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the experiments package

from experiments.claims import memory  # noqa: E402
from seqcli.config import ModelConfig, config_from_dict  # noqa: E402
from seqcli.corpus import Batch  # noqa: E402
from seqcli.model.cells import CELLS  # noqa: E402
from seqcli.model.encoder import Encoder, EncoderOutput  # noqa: E402
from seqcli.model.seq2seq import Seq2Seq  # noqa: E402
from seqcli.tasks import new_trainer  # noqa: E402
from seqcli.textio import read_lines  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """As the experiment runs (and faster on a busy machine); restored for other modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_pair_has_keys_then_distractors_and_the_keys_as_target() -> None:
    rng = random.Random(3)
    for distance in (1, 4, 17):
        src, tgt = memory.make_pair(rng, distance)
        symbols = src.split()
        assert len(symbols) == memory.N_KEYS + distance
        assert all(s in memory.KEYS for s in symbols[: memory.N_KEYS])
        assert all(s in memory.DISTRACTORS for s in symbols[memory.N_KEYS :])
        assert tgt.split() == symbols[: memory.N_KEYS]
        assert memory.distance_of(src) == distance


def test_each_band_holds_its_distances(tmp_path: Path) -> None:
    setting = memory.TINY
    for band in setting.bands:
        folder = tmp_path / memory.band_name(band)
        memory.write_task(folder, setting, band)
        test = [memory.distance_of(s) for s in read_lines(folder / "test.src")]
        inside = [d for d in setting.test_distances if band[0] <= d <= band[1]]
        assert sorted(set(test)) == inside
        assert all(test.count(d) == setting.test_pairs for d in inside)
        gradient = [memory.distance_of(s) for s in read_lines(folder / "gradient.src")]
        longest = band == setting.bands[-1]
        assert gradient == ([max(setting.test_distances)] * setting.gradient_pairs if longest else [])
        train = [memory.distance_of(s) for s in read_lines(folder / "train.src")]
        assert len(train) == setting.train_pairs and band[0] <= min(train) and max(train) <= band[1]
        for src, tgt in zip(read_lines(folder / "train.src"), read_lines(folder / "train.tgt"), strict=True):
            assert tgt.split() == src.split()[: memory.N_KEYS]


@pytest.mark.parametrize("cell", memory.CELLS)
def test_the_stepped_encoder_equals_the_encoder(cell: str) -> None:
    torch.manual_seed(0)
    encoder = Encoder(CELLS[cell], 20, 8, 16, 1, False, 0.0, 0.0, 0)
    src = torch.randint(4, 20, (5, 12))  # (B, S), no padding
    lengths = torch.full((5,), 12)

    def outputs_and_gradients(encoded: EncoderOutput) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        encoder.zero_grad()
        (encoded.states.square().sum() + sum(f.sum() for f in encoded.final)).backward()
        grads = [p.grad.clone() for p in encoder.parameters() if p.grad is not None]
        return [encoded.states.detach(), *(f.detach() for f in encoded.final)], grads

    whole, whole_grads = outputs_and_gradients(encoder(src, lengths))
    encoded, states = memory.stepped_encode(encoder, src)
    stepped, stepped_grads = outputs_and_gradients(encoded)
    assert len(states) == 12
    for a, b in zip(whole, stepped, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    for a, b in zip(whole_grads, stepped_grads, strict=True):  # sums of many terms: relative
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_stepped_encoding_refuses_padding() -> None:
    model = small_model("gru")
    batch = fixed_length_batch(2, 6)
    batch.src_lengths[1] = 4
    with pytest.raises(ValueError, match="one length"):
        memory.gradient_norms(model, batch)


def fixed_length_batch(size: int, distance: int) -> Batch:
    """Random keys and distractors as ids (keys 4-11, distractors 12-19), all one length."""
    keys = torch.randint(4, 12, (size, memory.N_KEYS))
    src = torch.cat([keys, torch.randint(12, 20, (size, distance))], dim=1)  # (B, S)
    bos, eos = torch.full((size, 1), 2), torch.full((size, 1), 3)
    return Batch(src, torch.full((size,), src.size(1)), torch.cat([bos, keys], 1), torch.cat([keys, eos], 1))


def small_model(cell: str) -> Seq2Seq:
    torch.manual_seed(1)
    config = ModelConfig(**{**memory.MODEL, "cell": cell})  # type: ignore[arg-type]
    return Seq2Seq(config, 20, 20)


@pytest.mark.parametrize("cell", memory.CELLS)
def test_gradient_reaches_every_encoder_step(cell: str) -> None:
    norms = memory.gradient_norms(small_model(cell), fixed_length_batch(4, 60))
    assert len(norms) == memory.N_KEYS + 60
    assert all(n > 0 and torch.isfinite(torch.tensor(n)) for n in norms)
    assert norms[50] < norms[0]  # at initialisation the gradient fades with the steps back


def test_gradient_norms_are_the_mean_of_each_examples_own() -> None:
    model, batch = small_model("lstm"), fixed_length_batch(3, 8)
    together = memory.gradient_norms(model, batch)
    alone = [
        memory.gradient_norms(
            model, Batch(*(t[i : i + 1] for t in (batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out)))
        )
        for i in range(3)
    ]
    expected = [sum(column) / 3 for column in zip(*alone, strict=True)]
    torch.testing.assert_close(torch.tensor(together), torch.tensor(expected), rtol=1e-5, atol=0)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    work = tmp_path_factory.mktemp("claims")
    return work, memory.run(work, [1], 1, tiny=True)


def test_tiny_run_measures_every_cell_on_every_band(tiny_run: tuple[Path, dict[str, Any]]) -> None:
    work, results = tiny_run
    assert (work / "memory" / "results.json").exists()
    bands = memory.TINY.bands
    assert sorted((r["cell"], tuple(r["band"])) for r in results["runs"]) == sorted(
        (cell, band) for cell in memory.CELLS for band in bands
    )
    length = memory.N_KEYS + max(memory.TINY.test_distances)
    for run in results["runs"]:
        assert run["updates"] == memory.TINY.updates
        band = tuple(run["band"])
        assert (
            set(run["exact"])
            == set(run["keys"])
            == {str(d) for d in memory.TINY.test_distances if memory.TINY.band_of(d) == band}
        )
        assert all(0 <= a <= 100 for a in [*run["exact"].values(), *run["keys"].values()])
        if band == bands[-1]:  # the longest band measures the gradient
            assert len(run["gradient_init"]) == len(run["gradient_trained"]) == length
            assert all(n > 0 for n in run["gradient_init"] + run["gradient_trained"])
            assert run["gradient_init"] != run["gradient_trained"]  # training moved the weights
        else:
            assert "gradient_init" not in run
    for cell in memory.CELLS:
        assert [len(curve) for curve in memory.by_distance(results, cell, "exact")] == [3]


def test_one_piece_per_symbol(tiny_run: tuple[Path, dict[str, Any]]) -> None:
    from seqcli.tokenizer import Tokenizer

    work, _ = tiny_run
    root = work / "memory" / "tiny"
    tokenizer = Tokenizer.load(root / "spm.model")
    line = read_lines(root / memory.band_name(memory.TINY.bands[-1]) / "data" / "gradient.src")[0]
    assert len(tokenizer.encode([line])[0]) == len(line.split())


def test_initial_model_is_the_one_training_starts_from(tiny_run: tuple[Path, dict[str, Any]]) -> None:
    work, _ = tiny_run
    root = work / "memory" / "tiny"
    config = memory.run_config("lstm", 1, memory.TINY, root / memory.band_name(memory.TINY.bands[0]) / "data")
    config["tokenizer"]["src_model"] = str(root / "spm.model")
    trainer = new_trainer(config_from_dict(config), work / "unused", "cpu")
    rebuilt = memory.initial_model(config, trainer.task.tokenizers[0].vocab_size).state_dict()
    for name, tensor in trainer.model.state_dict().items():
        torch.testing.assert_close(tensor, rebuilt[name], atol=0, rtol=0)


def test_section_draws_figures_and_tables(tiny_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    _, results = tiny_run
    lines = memory.section(results, tmp_path / "figures")
    for name in ("memory-accuracy.png", "memory-gradients.png"):
        assert (tmp_path / "figures" / name).read_bytes().startswith(b"\x89PNG")
    assert lines[0] == "## 1. Memory over distance: RNN, GRU, LSTM, minGRU, minLSTM"
    assert "READING: memory" in lines
    for cell in memory.CELLS:
        assert any(line.startswith(f"| {cell} | exact |") for line in lines)
        assert any(line.startswith(f"| {cell} | initial |") for line in lines)
    text = "\n".join(lines)
    assert "](figures/memory-accuracy.png)" in text and "](figures/memory-gradients.png)" in text
    assert "Each band of distances (1-3, 4-10) trains its own models" in text
