"""The claims report: Multi30k-grid experiments in a tiny setting, and the report assembly."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `experiments` lives at the repository root

from experiments.claims import __main__ as claims  # noqa: E402
from experiments.claims.multi30k import GOLD_FLOOR, schedules, variants  # noqa: E402
from seqcli.teacher import TeacherForcingSchedule  # noqa: E402
from seqcli.toydata import ToySplitSizes, write_toy_corpus  # noqa: E402


def test_every_schedule_reaches_the_floor_at_four_fifths_of_training() -> None:
    steps = 800
    for name, train in schedules(steps).items():
        schedule = TeacherForcingSchedule(
            kind=train["teacher_forcing"],
            minimum=train.get("tf_min", 0.0),
            slope=train.get("tf_slope", 1e-4),
            k=train.get("tf_k", 0.9999),
        )
        assert schedule.gold_probability(0) > 0.99, name
        assert schedule.gold_probability(steps // 2) > GOLD_FLOOR + 0.05, name
        assert schedule.gold_probability(4 * steps // 5) == pytest.approx(GOLD_FLOOR, abs=0.005), name


def test_each_grid_run_changes_one_thing() -> None:
    runs = variants(800)
    assert runs["general"] == ({}, {})
    changed = [(len(model) + len(train)) for name, (model, train) in runs.items() if name != "general"]
    assert all(n >= 1 for n in changed)
    assert all(len(model) <= 1 for model, _ in runs.values())


@pytest.fixture
def multi30k_like(tmp_path: Path) -> Path:
    """The dates task under Multi30k's file names: train/valid/test2016 .de -> .en."""
    raw = tmp_path / "raw"
    write_toy_corpus(raw, ToySplitSizes(train=120, valid=8, test=12), seed=1)
    data = tmp_path / "data"
    data.mkdir()
    for split, name in (("train", "train"), ("valid", "valid"), ("test", "test2016")):
        shutil.copy(raw / f"{split}.src", data / f"{name}.de")
        shutil.copy(raw / f"{split}.tgt", data / f"{name}.en")
    return data


@pytest.mark.slow  # an experiment's whole report, end to end
def test_tiny_grid_experiments_write_the_report(
    multi30k_like: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readings = tmp_path / "readings.md"
    readings.write_text("## beam\n\nA hand-written reading of the beam table.\n", encoding="utf-8")
    monkeypatch.setattr(claims, "READINGS", readings)
    work, report = tmp_path / "work", tmp_path / "docs" / "experiments.md"
    common = ["--work", str(work), "--report", str(report), "--data", str(multi30k_like)]
    common += ["--results", str(tmp_path / "results")]
    for command in ("bottleneck", "soft-hard", "sampling", "beam"):
        claims.main([command, "--tiny", "--seeds", "1", "--workers", "1", *common])
    text = report.read_text(encoding="utf-8")
    for heading in (
        "## 2. The fixed-vector bottleneck",
        "## 3. Soft vs hard",
        "## 4. Teacher forcing",
        "## 5.",
    ):
        assert heading in text
    assert "A hand-written reading of the beam table." in text
    assert "(no reading written yet)" not in text.split("## 5.")[1]
    assert "reproduce: `.venv/bin/python -m experiments.claims beam --work runs/claims`" in text
    for figure in ("bottleneck-multi30k", "soft-hard", "scheduled-sampling", "beam"):
        assert (tmp_path / "docs" / "figures" / f"{figure}.png").stat().st_size > 1000
    # Every cell of the grid tables is a mean ± spread over the seeds.
    row = next(line for line in text.splitlines() if line.startswith("| teacher forcing only |"))
    assert row.count("±") >= 5
    # The sampling table has one row per scheduled-sampling run of the grid.
    assert sum(line.startswith(("| sequential,", "| parallel,")) for line in text.splitlines()) == 6


def test_the_grid_is_counted_from_the_part_files_each_run_once(tmp_path: Path) -> None:
    from experiments.claims.common import write_json

    def part(runs: dict[str, list[float]]) -> dict[str, object]:
        records = {name: [{"seconds": s} for s in seconds] for name, seconds in runs.items()}
        return {"steps": 800, "seeds": [1, 2], "runs": records}

    # The general-attention runs are read by both parts: they count once.
    write_json(tmp_path / "bottleneck.json", part({"general": [600.0, 900.0], "none": [700.0, 800.0]}))
    write_json(tmp_path / "soft-hard.json", part({"general": [600.0, 900.0], "hard": [1200.0, 1800.0]}))
    grid = claims.grid_summary(tmp_path)
    assert grid is not None
    assert (grid["runs"], grid["configurations"], grid["seeds"]) == (6, 3, [1, 2])
    assert grid["run_seconds"] == 6000.0
    text = " ".join(claims._grid_lines(grid))
    assert "800 updates each: 6 runs of 3 configurations over seeds 1, 2" in text
    assert "their training took 100.0 min summed over the runs" in text
    assert f"{claims.GRID_WORKERS} runs at a time" in text
    assert f"about {6000 / 60 / claims.GRID_WORKERS:.1f} min of wall-clock time" in text
    assert claims.grid_summary(tmp_path / "nothing") is None
    # A part that trained its own general-attention runs (other seconds) adds them.
    write_json(tmp_path / "sampling.json", part({"general": [500.0, 500.0], "ss": [700.0, 800.0]}))
    grid = claims.grid_summary(tmp_path)
    assert grid is not None
    assert (grid["runs"], grid["configurations"], grid["run_seconds"]) == (10, 4, 8500.0)


def test_the_total_counts_a_part_that_trained_its_own_runs_once(tmp_path: Path) -> None:
    from experiments.claims.common import write_json

    def part(wall: float, runs: dict[str, list[float]]) -> dict[str, object]:
        records = {name: [{"seconds": s} for s in seconds] for name, seconds in runs.items()}
        return {"steps": 800, "seeds": [1, 2], "runs": records, "wall_seconds": wall, "workers": 2}

    # bottleneck read runs trained before it (60 s of scoring); sampling trained its own
    # (1,300 s of training two at a time, then 60 s of scoring); memory reads no grid.
    write_json(tmp_path / "bottleneck.json", part(60.0, {"general": [600.0, 900.0], "none": [700.0, 800.0]}))
    write_json(tmp_path / "sampling.json", part(1360.0, {"general": [500.0, 500.0], "ss": [700.0, 900.0]}))
    write_json(tmp_path / "memory.json", {"wall_seconds": 100.0})
    grid_seconds = (600 + 900 + 700 + 800 + 500 + 500 + 700 + 900) / claims.GRID_WORKERS
    assert claims._total_seconds(tmp_path) == pytest.approx(grid_seconds + 60 + 60 + 100)


def test_missing_data_is_one_line_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        claims.main(["beam", "--work", str(tmp_path / "w"), "--data", str(tmp_path / "nowhere")])
    assert str(tmp_path / "nowhere" / "train.de") in str(exit_info.value)
    assert not (tmp_path / "w").exists()


@pytest.mark.slow  # four cells trained and scored through the CLI, end to end
def test_tiny_cells_part_trains_each_cell_and_writes_its_section(multi30k_like: Path, tmp_path: Path) -> None:
    work, report = tmp_path / "work", tmp_path / "docs" / "experiments.md"
    common = ["--work", str(work), "--report", str(report), "--results", str(tmp_path)]
    common += ["--data", str(multi30k_like)]
    claims.main(["cells", "--tiny", "--seeds", "1", "--workers", "1", *common])
    text = report.read_text(encoding="utf-8")
    assert "## 8. The minimal cells" in text
    labels = ("| LSTM |", "| GRU |", "| minGRU |", "| minLSTM |")
    assert sum(line.startswith(labels) for line in text.splitlines()) == 4
    for cell in ("lstm", "gru", "mingru", "minlstm"):
        config = (work / "cells" / "tiny" / cell / "de-en-seed1" / "config.toml").read_text()
        assert f'cell = "{cell}"' in config
    assert (tmp_path / "docs" / "figures" / "cells-multi30k.png").stat().st_size > 1000


def test_an_interrupted_grid_run_goes_on_from_its_last_save_to_the_same_weights(
    multi30k_like: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    from experiments.claims.common import train_model
    from experiments.claims.multi30k import run_config

    def config(steps: int) -> dict[str, object]:
        recipe = run_config("general", 1, 4, multi30k_like, tiny=True)
        recipe["tokenizer"]["vocab_size"] = 60
        recipe["train"].update(max_steps=steps, eval_every=2, lr_schedule="constant", average_last=0)
        return recipe

    whole = train_model(config(4), tmp_path / "whole")
    train_model(config(2), tmp_path / "stopped")  # as far as its first save
    (tmp_path / "stopped" / "done.json").unlink()  # what a run killed after that save leaves
    resumed = train_model(config(4), tmp_path / "stopped")
    assert resumed["resumed_at_step"] == 2 and resumed["updates"] == whole["updates"] == 4
    ours, theirs = (load_file(tmp_path / run / "last.safetensors") for run in ("stopped", "whole"))
    assert ours.keys() == theirs.keys()
    assert all(ours[name].equal(theirs[name]) for name in ours)
