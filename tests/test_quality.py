"""Quality levers: plateau decay (exact on resume), step checkpoints and averaging, ensembles,
length-penalty tuning."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli

from seqcli import checkpoint
from seqcli.average import average_tensors, step_checkpoints
from seqcli.config import config_from_dict
from seqcli.device import has_native_bf16
from seqcli.lr_decay import plateau_learning_rate
from seqcli.tasks import new_trainer, resume_trainer


class SilentReporter:
    def on_start(self, max_steps: int, info: dict[str, object]) -> None: ...
    def on_step(self, step: int, loss: float, tokens_per_second: float, gold_probability: float) -> None: ...
    def on_evaluation(self, evaluation: object) -> None: ...
    def on_end(self, summary: object) -> None: ...
    def on_note(self, text: str) -> None: ...


def test_plateau_decay_by_hand() -> None:
    rate = [plateau_learning_rate(1.0, n, 0.5, 2, 0.1) for n in range(5)]
    assert rate == [1.0, 1.0, 0.5, 1.0, 0.5]  # decays at 2 and 4 evaluations without gain
    assert plateau_learning_rate(0.15, 2, 0.5, 2, 0.1) == 0.1  # floored at the minimum
    assert plateau_learning_rate(0.05, 2, 0.5, 2, 0.1) == 0.05  # never raised to it
    assert plateau_learning_rate(1.0, 2, 1.0, 2, 0.0) == 1.0  # factor 1: off


def test_average_tensors_by_hand() -> None:
    states = [{"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([3.0, 6.0])}]
    assert average_tensors(states)["w"].tolist() == [2.0, 4.0]


def _config(toy_dir: Path, max_steps: int) -> object:
    # A learning rate too small to change greedy output keeps validation BLEU flat, so
    # every evaluation after the first is a plateau and the rate halves each time.
    return config_from_dict(
        {
            "data": {"train": str(toy_dir / "train"), "valid": str(toy_dir / "valid")},
            "tokenizer": {"vocab_size": 120, "joint": False},
            "model": {"embedding_size": 16, "hidden_size": 32, "encoder_layers": 1, "decoder_layers": 1},
            "train": {
                "learning_rate": 1e-7,
                "batch_tokens": 1500,
                "max_steps": max_steps,
                "eval_every": 4,
                "patience": 100,
                "lr_decay_factor": 0.5,
                "lr_patience": 1,
                "keep_checkpoints": 2,
            },
        }
    )


@pytest.fixture(scope="module")
def decayed_run(toy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("decay") / "run"
    new_trainer(_config(toy_dir, 16), run_dir, "cpu").run(SilentReporter())  # type: ignore[arg-type]
    return run_dir


def test_plateau_decay_is_logged_and_step_checkpoints_pruned(decayed_run: Path) -> None:
    records = checkpoint.read_log(decayed_run)
    assert [r["step"] for r in records] == [4, 8, 12, 16]
    assert [r["learning_rate"] for r in records] == [1e-7, 1e-7, 5e-8, 2.5e-8]
    assert [p.name for p in step_checkpoints(decayed_run)] == [
        "step-00000012.safetensors",
        "step-00000016.safetensors",
    ]


def test_resume_keeps_the_decayed_rate_exactly(toy_dir: Path, tmp_path: Path, decayed_run: Path) -> None:
    run_dir = tmp_path / "run"
    new_trainer(_config(toy_dir, 8), run_dir, "cpu").run(SilentReporter())  # type: ignore[arg-type]
    resumed = resume_trainer(run_dir, _config(toy_dir, 16), "cpu")  # type: ignore[arg-type]
    resumed.run(SilentReporter())  # type: ignore[arg-type]
    assert checkpoint.read_log(run_dir) == [
        {
            **r,
            "elapsed_seconds": a["elapsed_seconds"],
            "target_tokens_per_second": a["target_tokens_per_second"],
        }
        for r, a in zip(checkpoint.read_log(decayed_run), checkpoint.read_log(run_dir), strict=True)
    ]
    whole = checkpoint.load_run(decayed_run, checkpoint.LAST).tensors
    again = checkpoint.load_run(run_dir, checkpoint.LAST).tensors
    assert all(torch.equal(whole[name], again[name]) for name in whole)


def test_average_cli_makes_a_run_that_translates(decayed_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "averaged"
    result = run_cli("average", str(decayed_run), "--last", "2", "--out", str(out))
    assert "mean of 2 checkpoints" in result.stderr
    mean = checkpoint.load_run(out).tensors
    parts = [checkpoint.load_run(decayed_run, p.name).tensors for p in step_checkpoints(decayed_run)]
    name = next(iter(mean))
    assert torch.allclose(mean[name], (parts[0][name] + parts[1][name]) / 2)
    assert (
        run_cli("translate", str(out), "--beam-size", "1", input_text="1 May 2001\n").stdout.count("\n") == 1
    )
    refused = run_cli("average", str(decayed_run), "--last", "2", "--out", str(out), check=False)
    assert refused.returncode == 2 and "not empty" in refused.stderr
    too_many = run_cli("average", str(decayed_run), "--last", "3", "--out", str(tmp_path / "b"), check=False)
    assert too_many.returncode == 1 and "kept 2 step checkpoints, fewer than --last 3" in too_many.stderr
    assert not (tmp_path / "b").exists()


def test_average_needs_step_checkpoints(trained_run: Path, tmp_path: Path) -> None:
    result = run_cli("average", str(trained_run), "--last", "2", "--out", str(tmp_path / "a"), check=False)
    assert result.returncode == 1 and "keep_checkpoints" in result.stderr


def test_ensemble_of_one_model_twice_equals_the_model(trained_run: Path, toy_dir: Path) -> None:
    lines = (toy_dir / "test.src").read_text(encoding="utf-8").splitlines()[:40]
    text = "\n".join(lines) + "\n"
    for beam in ("3",):
        single = run_cli("translate", str(trained_run), "--beam-size", beam, input_text=text).stdout
        double = run_cli(
            "translate", str(trained_run), str(trained_run), "--beam-size", beam, input_text=text
        ).stdout
        assert double == single


def _greedy_over_mean_log_probabilities(run_dirs: list[Path], line: str) -> tuple[list[int], float]:
    """Greedy search written out here: at each step, the mean of the runs' log-probabilities
    (renormalized); the tokens chosen and the sum of their log-probabilities, EOS included."""
    from seqcli.translate import Translator
    from seqcli.vocab import BOS_ID, EOS_ID

    translators = [Translator.from_run_dir(r, {}, torch.device("cpu")) for r in run_dirs]
    ids = torch.tensor(translators[0].src_tokenizer.encode([line]))
    steps = int(translators[0].max_lengths([ids.shape[1]])[0])  # the first run's output limit
    with torch.no_grad():
        encoded = [t.model.encode(ids, torch.tensor([ids.shape[1]])) for t in translators]
        prev, out, total = torch.tensor([BOS_ID]), [], 0.0
        for _ in range(steps):
            stepped = [t.model.step(prev, s, m) for t, (s, m) in zip(translators, encoded, strict=True)]
            encoded = [(s, m) for (_, s), (_, m) in zip(stepped, encoded, strict=True)]
            log_probs = torch.log_softmax(torch.stack([lp for lp, _ in stepped]).mean(0), dim=-1)[0]
            token = int(log_probs.argmax())
            total += float(log_probs[token])
            if token == EOS_ID:
                break
            out.append(token)
            prev = torch.tensor([token])
    return out, total


def test_ensemble_searches_the_mean_of_its_members_log_probabilities(
    trained_run: Path, decayed_run: Path, toy_dir: Path
) -> None:
    from seqcli.ensemble import ensemble_translator

    lines = (toy_dir / "test.src").read_text(encoding="utf-8").splitlines()[:8]
    runs = [trained_run, decayed_run]
    ensemble = ensemble_translator(runs, {}, torch.device("cpu"))
    ids = ensemble.src_tokenizer.encode(lines)
    found = ensemble.translate_ids(ids, replace(ensemble.decode, beam_size=1, n_best=1))
    for line, (best, *_) in zip(lines, found, strict=True):
        tokens, total = _greedy_over_mean_log_probabilities(runs, line)
        assert best.tokens == tokens and best.score == pytest.approx(total, abs=1e-4)
        for run in runs:  # each member alone scores its own search differently: both count
            assert _greedy_over_mean_log_probabilities([run], line)[1] != pytest.approx(total, abs=1e-4)
    text = "\n".join(lines) + "\n"
    cli = run_cli("translate", str(trained_run), str(decayed_run), "--beam-size", "1", input_text=text)
    assert cli.stdout.splitlines() == ensemble.tgt_tokenizer.decode([h[0].tokens for h in found])


def test_ensemble_of_different_sizes_sharing_tokenizers(trained_run: Path, decayed_run: Path) -> None:
    # The two runs trained the same SentencePiece models on the same data, so they may ensemble.
    result = run_cli("translate", str(trained_run), str(decayed_run), input_text="1 May 2001\n\nx\n")
    assert len(result.stdout.split("\n")) == 4 and result.stdout.split("\n")[1] == ""


def test_tune_length_penalty_prints_each_alpha_and_saves_the_best(
    trained_run: Path, toy_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "copy"
    run_dir.mkdir()
    for name in ("config.toml", "src.spm", "tgt.spm", "best.safetensors"):
        (run_dir / name).write_bytes((trained_run / name).read_bytes())
    result = run_cli(
        "tune-length-penalty", str(run_dir), "--valid", str(toy_dir / "valid"),
        "--alphas", "0,1", "--beam-size", "2", "--save",
    )  # fmt: skip
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows[0] == ["alpha", "BLEU", "chrF"] and [r[0] for r in rows[1:]] == ["0", "1"]
    best = max(rows[1:], key=lambda r: float(r[1]))
    assert checkpoint.load_config(run_dir).decode.length_penalty == float(best[0])
    assert "best alpha" in result.stderr and "tok:13a" in result.stderr


# Where the CPU has no bf16 units, oneDNN has no bf16 LSTM to run the autocast pass with.
WITH_BF16_UNITS = pytest.mark.skipif(
    not has_native_bf16(torch.device("cpu")), reason="this CPU has no bf16 units (AVX-512 BF16 or AMX)"
)


@pytest.mark.parametrize("native", [pytest.param(True, marks=WITH_BF16_UNITS), False])
def test_bf16_autocast_only_where_the_hardware_has_it(
    toy_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    import seqcli.task as task_module

    monkeypatch.setattr(task_module, "has_native_bf16", lambda device: native)
    config = _config(toy_dir, 1)
    config = replace(config, train=replace(config.train, bf16=True))  # type: ignore[attr-defined]
    trainer = new_trainer(config, tmp_path / "run", "cpu")  # type: ignore[arg-type]
    seen: list[torch.dtype] = []
    trainer.model.decoder.output.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    loss, tokens = trainer.train_update([list(trainer.task.train_items)[:8]], 0)
    assert math.isfinite(loss) and tokens > 0
    assert seen and set(seen) == {torch.bfloat16 if native else torch.float32}  # every step's output layer
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
