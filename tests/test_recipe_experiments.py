"""experiments/multi30k_cpu.py: every ablation row is a valid `seqcli train` command that
changes what its row says, on top of the untied base recipe; the final report reads what
`final` leaves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run_cli
from conftest import TINY_TRAIN_ARGS
from typer.testing import CliRunner

import seqcli.cli.training
from experiments.multi30k_cpu import (
    BASE_RECIPE,
    REPO,
    ROWS,
    average_windows,
    check_repeats,
    final_command,
    final_summary,
    final_table,
    levers_command,
    markdown_table,
    merge_rows,
    rebuild_average,
    rebuild_table,
    rerun_command,
    run_logged,
    thread_env,
    valid_figure,
)
from experiments.multi30k_cpu import (
    seqcli as seqcli_command,
)
from seqcli.checkpoint import read_log
from seqcli.cli import app
from seqcli.config import Config, config_from_dict, load_toml


def _config_of(args: list[str], monkeypatch: pytest.MonkeyPatch) -> Config:
    seen: list[Config] = []
    monkeypatch.setattr(seqcli.cli.training, "run_training", lambda config, *_: seen.append(config))
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"{result.output}{result.exception}"
    return seen[0]


def _changed(config: Config, base: Config) -> dict[str, object]:
    """`section.name` -> value for each tokenizer, model and train setting that differs from base."""
    return {
        f"{section}.{name}": value
        for section in ("tokenizer", "model", "train")
        for name, value in vars(getattr(config, section)).items()
        if value != getattr(getattr(base, section), name)
    }


@pytest.mark.parametrize("row", list(ROWS))
def test_each_lever_row_trains_the_base_with_its_change(
    row: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "base.toml").write_text(BASE_RECIPE)
    base = config_from_dict(load_toml(tmp_path / "base.toml"))
    assert (base.model.embedding_size, base.model.tied_embeddings, base.train.average_last) == (128, False, 5)
    config = _config_of(levers_command(row, tmp_path / "data", tmp_path / row, 15)[1:], monkeypatch)
    assert config.train.max_minutes == 15
    changed = set(_changed(config, base)) - {"train.max_minutes"}
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


def test_final_command_trains_the_recipe_with_only_the_given_changes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recipe = config_from_dict(load_toml(REPO / "configs" / "multi30k-en-de-cpu.toml"))
    changes = ["model.dropout=0.3", "tokenizer.sampling_alpha=0.5"]
    command = final_command("en-de", 2, tmp_path / "data", tmp_path / "run", changes)
    config = _config_of(command[1:], monkeypatch)
    expected = {"model.dropout": 0.3, "tokenizer.sampling_alpha": 0.5, "train.seed": 2}
    assert _changed(config, recipe) == expected
    assert (config.data.train, config.train.max_minutes) == (str(tmp_path / "data" / "train"), 45)


def test_thread_env_sets_or_clears_the_torch_threads_of_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setenv("SEQCLI_SHARED_DATA", "/data")
    assert thread_env(1)["OMP_NUM_THREADS"] == "1"
    assert thread_env(2)["OMP_NUM_THREADS"] == "2"
    alone = thread_env(0)  # torch's default: one thread per core
    assert "OMP_NUM_THREADS" not in alone and alone["SEQCLI_SHARED_DATA"] == "/data"


def _fake_final_run(work: Path, name: str, curve: list[tuple[int, float]], averaged: float) -> None:
    """The files `final` leaves for a run: its log, finish.json, stderr log and scores."""
    run_dir = work / name
    run_dir.mkdir(parents=True)
    log = [
        {"step": step, "elapsed_seconds": 60.0 * i, "valid_bleu": bleu}
        for i, (step, bleu) in enumerate(curve)
    ]
    (run_dir / "log.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in log))
    finish = {
        "averaging": {"valid_bleu": averaged, "kept": averaged > max(b for _, b in curve)},
        "length_penalty": {"beam_size": 5, "valid_bleu": {"0": 30.5, "1.2": 31.25, "2": 30.0}, "chosen": 1.2},
    }
    (run_dir / "finish.json").write_text(json.dumps(finish))
    (work / f"{name}.log").write_text("seqcli train: parameters 2,277,792, train_pairs 10\n")
    scores = {
        f"{t}.beam{b}": {"bleu": 20.0 + b, "chrf": 50.0 + b} for t in ("test2016", "test2017") for b in (1, 5)
    }
    (work / f"{name}.json").write_text(json.dumps({"scores": scores, "load_before": 0.1, "load_after": 2.0}))


def test_final_report_table_and_figure_with_earlier_runs(tmp_path: Path) -> None:
    _fake_final_run(tmp_path / "now", "de-en-seed1", [(400, 20.0), (800, 29.5)], averaged=30.25)
    _fake_final_run(tmp_path / "before", "de-en-seed1", [(400, 18.0), (800, 27.0)], averaged=26.0)
    now = final_summary("de-en-seed1", tmp_path / "now")
    row = final_table([now]).splitlines()[-1]
    # best single / kept mean, then the chosen length penalty with its valid BLEU
    assert "| 29.50 / 30.25 | 1.2 (31.25) |" in row and "| 2.28M |" in row
    # an earlier results file, as final-report wrote it, is drawn beside the current runs
    earlier = json.loads(json.dumps({"runs": [final_summary("de-en-seed1", tmp_path / "before")]}))["runs"]
    figure = tmp_path / "valid.png"
    valid_figure([now], figure, earlier, "constant rate")
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_valid_figure_legend_notes_the_runs_and_the_earlier_runs(tmp_path: Path, monkeypatch) -> None:
    import matplotlib.axes

    labels: list[str | None] = []
    plot = matplotlib.axes.Axes.plot

    def recording_plot(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        labels.append(kwargs.get("label"))
        return plot(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", recording_plot)
    _fake_final_run(tmp_path / "now", "en-de-seed2", [(400, 20.0), (800, 29.5)], averaged=30.25)
    _fake_final_run(tmp_path / "before", "en-de-seed2", [(400, 18.0), (800, 27.0)], averaged=26.0)
    now = final_summary("en-de-seed2", tmp_path / "now")
    before = final_summary("en-de-seed2", tmp_path / "before")
    valid_figure([now], tmp_path / "a.png", [before], "label smoothing 0.2", "label smoothing 0.3")
    assert "en-de-seed2 (label smoothing 0.3)" in labels and "en-de-seed2 (label smoothing 0.2)" in labels
    labels.clear()
    valid_figure([now], tmp_path / "b.png")  # no note: the run's name alone
    assert "en-de-seed2" in labels and not any("(" in label for label in labels if label)


def test_levers_report_adds_a_rerun_row_and_keeps_the_others_of_the_same_budget() -> None:
    earlier = {"minutes": 15.0, "rows": [{"row": "tied", "bleu": 1}, {"row": "base-bf16", "bleu": 2}]}
    merged = merge_rows(earlier, 15.0, [{"row": "tied+inverse-sqrt", "bleu": 3}, {"row": "tied", "bleu": 4}])
    assert merged == {
        "minutes": 15.0,
        "rows": [
            {"row": "base-bf16", "bleu": 2},
            {"row": "tied", "bleu": 4},
            {"row": "tied+inverse-sqrt", "bleu": 3},
        ],
    }
    # rows trained for another budget are not comparable, so they are dropped
    assert merge_rows(earlier, 10.0, [{"row": "tied", "bleu": 5}])["rows"] == [{"row": "tied", "bleu": 5}]
    assert merge_rows(None, 15.0, [])["rows"] == []


@pytest.mark.slow  # trains a run and averages five windows (about 25 s)
def test_averaging_scores_each_window_the_run_kept_and_reuses_its_averages(
    toy_dir: Path, tmp_path: Path
) -> None:
    run_cli(
        "train", "--train", str(toy_dir / "train"), "--valid", str(toy_dir / "valid"), *TINY_TRAIN_ARGS,
        "--max-steps", "60", "--eval-every", "20", "--set", "train.keep_checkpoints=3",
        "--out", str(tmp_path / "en-de-seed1"),
    )  # fmt: skip
    found = average_windows("en-de-seed1", tmp_path, toy_dir, [2, 3, 4], "0,1")
    # three checkpoints kept: no mean of four; each window scored at both length penalties
    assert sorted(found["valid_bleu_beam5"]) == ["2", "3"]
    assert all(
        sorted(s) == ["0", "1"] and all(0 <= b <= 100 for b in s.values())
        for s in found["valid_bleu_beam5"].values()
    )
    made = (tmp_path / "en-de-seed1-avg2" / "best.safetensors").stat().st_mtime_ns
    again = average_windows("en-de-seed1", tmp_path, toy_dir, [2], "0,1")
    assert again["valid_bleu_beam5"]["2"] == found["valid_bleu_beam5"]["2"]
    assert (tmp_path / "en-de-seed1-avg2" / "best.safetensors").stat().st_mtime_ns == made


def test_rerun_command_repeats_the_recorded_training_to_a_step_without_the_end_steps() -> None:
    recorded = "seqcli train --config c.toml --seed 3 --out runs/a/en-de-seed3 --set model.dropout=0.3"
    command = rerun_command(recorded, Path("runs/b/en-de-seed3"), 2400)
    assert command[1:] == [
        "train", "--config", "c.toml", "--seed", "3", "--out", "runs/b/en-de-seed3",
        "--set", "model.dropout=0.3", "--max-steps", "2400", "--max-minutes", "0",
        "--set", "train.average_last=0", "--set", 'train.tune_length_penalty=""',
    ]  # fmt: skip


def _toy_multi30k(toy_dir: Path, out: Path) -> Path:
    """The toy corpus under Multi30k's file names (en-de; its valid set doubles as test2016 and test2017)."""
    out.mkdir()
    for split, toy in [("train", "train"), ("valid", "valid"), ("test2016", "valid"), ("test2017", "valid")]:
        for lang, toy_lang in [("en", "src"), ("de", "tgt")]:
            (out / f"{split}.{lang}").symlink_to(toy_dir / f"{toy}.{toy_lang}")
    return out


@pytest.mark.slow  # retrains pruned checkpoints (about 45 s)
def test_rebuild_average_retrains_the_pruned_checkpoints_and_scores_their_mean(
    toy_dir: Path, tmp_path: Path
) -> None:
    data = _toy_multi30k(toy_dir, tmp_path / "data")
    work, rebuild = tmp_path / "work", tmp_path / "rebuild"
    work.mkdir()
    train = seqcli_command(
        "train", "--train", str(data / "train"), "--valid", str(data / "valid"), *TINY_TRAIN_ARGS,
        "--src-lang", "en", "--tgt-lang", "de", "--seed", "3", "--max-steps", "40", "--eval-every", "10",
        "--set", "train.keep_checkpoints=2", "--set", "train.average_last=2",
        "--set", 'train.tune_length_penalty="0,1"', "--out", str(work / "en-de-seed3"), "--device", "cpu",
    )  # fmt: skip
    (work / "en-de-seed3.json").write_text(json.dumps(run_logged("en-de-seed3", work, train)))
    found = rebuild_average("en-de-seed3", work, rebuild, data, last=4, alphas="0,1")
    # the run kept steps 30 and 40; 10 and 20 came from a rerun stopped at 20
    assert (found["rebuilt_steps"], found["averaged_steps"]) == ([10, 20], [10, 20, 30, 40])
    assert [entry["step"] for entry in read_log(rebuild / "en-de-seed3")] == [10, 20]
    assert found["rerun"]["command"].endswith(
        "--max-steps 20 --max-minutes 0 --set train.average_last=0 --set 'train.tune_length_penalty=\"\"'"
    )
    assert found["kept_by_train"] == (found["valid_bleu_greedy"] > found["best_single_valid_bleu"])
    assert sorted(found["valid_bleu_beam5"]) == sorted(found["run_valid_bleu_beam5"]) == ["0", "1"]
    assert sorted(found["scores"]) == [f"{t}.beam{b}" for t in ("test2016", "test2017") for b in (1, 5)]
    assert all(0 <= s["bleu"] <= 100 for s in found["scores"].values())
    assert "| en-de-seed3 | 10, 20 |" in rebuild_table([found])
    # the tuned length penalty is stored in the mean's run
    chosen = max(found["valid_bleu_beam5"].items(), key=lambda kv: kv[1])[0]
    stored = config_from_dict(load_toml(rebuild / "en-de-seed3-avg4" / "config.toml")).decode.length_penalty
    assert stored == float(chosen)
    # a second call returns the record kept by the first, without scoring again
    (rebuild / "en-de-seed3-avg4" / "valid.beam1.de").unlink()
    assert rebuild_average("en-de-seed3", work, rebuild, data, last=4, alphas="0,1") == found
    assert not (rebuild / "en-de-seed3-avg4" / "valid.beam1.de").exists()

    # a rerun that does not repeat the run's evaluations is refused
    log = (work / "en-de-seed3" / "log.jsonl").read_text().splitlines()
    first = json.loads(log[0])
    first["valid_loss"] += 0.001
    (work / "en-de-seed3" / "log.jsonl").write_text("\n".join([json.dumps(first), *log[1:]]) + "\n")
    with pytest.raises(SystemExit, match="step 10 .* does not repeat the run"):
        check_repeats(work / "en-de-seed3", rebuild / "en-de-seed3")


def test_markdown_table_aligns_each_column_as_asked() -> None:
    assert markdown_table(["run", "BLEU"], "lr", [["a", "1.00"], ["b", "2.50"]]).splitlines() == [
        "| run | BLEU |",
        "|---|---:|",
        "| a | 1.00 |",
        "| b | 2.50 |",
    ]
