"""Result files from benchmarks/: figures with their provenance, and the figures themselves."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import ENV, run_cli

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from provenance import provenance, write_result  # noqa: E402

from seqcli.metrics import score  # noqa: E402
from seqcli.textio import read_lines  # noqa: E402


def test_a_result_file_says_when_where_and_how_it_was_measured(tmp_path: Path) -> None:
    started = provenance(["python", "bench.py", "--out", "a file.json"])
    path = tmp_path / "results" / "bench.json"
    write_result(path, {"tokens_per_second": 123.4}, started)
    record = json.loads(path.read_text())
    assert record["tokens_per_second"] == 123.4
    where = record["provenance"]
    assert shlex.split(where["command"]) == ["python", "bench.py", "--out", "a file.json"]
    assert where["hardware"]["cores"] == os.cpu_count()
    assert len(where["load_average"]) == len(where["load_average_at_end"]) == 3
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:
        assert where["commit"] == head.stdout.strip()
        assert isinstance(where["dirty"], bool)
    assert not list(path.parent.glob("*.tmp"))


PROVENANCE_FIELDS = {"date", "commit", "dirty", "hardware", "torch", "command", "load_average"}


def test_every_committed_result_file_carries_its_provenance() -> None:
    files = sorted((ROOT / "benchmarks" / "results").rglob("*.json"))
    assert files
    for path in files:
        where = json.loads(path.read_text(encoding="utf-8")).get("provenance", {})
        missing = PROVENANCE_FIELDS - set(where)
        assert not missing, f"{path.relative_to(ROOT)}: no {sorted(missing)} in its provenance"


def test_every_result_file_the_docs_name_is_committed() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    results = ROOT / "benchmarks" / "results"
    for page in pages:
        text = page.read_text(encoding="utf-8")
        named = set(re.findall(r"benchmarks/results/([\w./-]+\.(?:json|md))", text))
        named |= set(re.findall(r"`([\w.-]+\.json)`", text)) - {"finish.json", "gpu_check.json"}
        for name in sorted(named):
            found = (results / name).exists() or any(results.rglob(Path(name).name))
            assert found, f"{page.name} names {name}, which is not in benchmarks/results"


@pytest.mark.slow  # a benchmark script end to end (about 20 s beside the shared trained run)
def test_speed_scores_what_it_decodes_in_fp32_and_int8(
    trained_run: Path, toy_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "speed.json"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "speed.py"),
        "--run-dir", str(trained_run), "--train", str(toy_dir / "train"), "--test", str(toy_dir / "test"),
        "--src-lang", "src", "--tgt-lang", "tgt", "--train-steps", "2", "--warmup-steps", "1",
        "--decode-lines", "40", "--device", "cpu", "--quantize", "--rounds", "2", "--out", str(out),
    ]  # fmt: skip
    env = {**ENV, "PYTHONPATH": str(ROOT)}
    subprocess.run(command, check=True, capture_output=True, env=env, timeout=300)
    figures = json.loads(out.read_text())
    assert "--quantize" in figures["provenance"]["command"]
    logged = [json.loads(line) for line in (trained_run / "log.jsonl").read_text().splitlines()]
    assert figures["trained_run"]["updates"] == logged[-1]["step"] > 0
    assert figures["trained_run"]["best_valid_bleu"] == max(r["valid_bleu"] for r in logged)
    assert figures["decode_sentences"] == 40 and figures["train_steps"] == 2
    sources = read_lines(toy_dir / "test.src")[:40]
    references = read_lines(toy_dir / "test.tgt")[:40]
    greedy = run_cli(
        "translate", str(trained_run), "--beam-size", "1", "--device", "cpu", input_text="\n".join(sources)
    )
    assert figures["greedy_bleu"] == round(score(greedy.stdout.splitlines(), references).bleu, 2)
    for name in ("greedy", "beam5", "int8_greedy", "int8_beam5"):
        assert figures[f"{name}_sentences_per_second_generation"] > 0
        assert 0 <= figures[f"{name}_bleu"] <= 100
    # Two rounds: each kept, the figures their medians (the mean of the two).
    rounds = figures["rounds"]
    assert len(rounds) == 2
    for key in ("train_target_tokens_per_second", "beam5_sentences_per_second_generation", "beam5_bleu"):
        assert figures[key] == pytest.approx((rounds[0][key] + rounds[1][key]) / 2)
    assert rounds[0]["beam5_bleu"] == rounds[1]["beam5_bleu"]  # the same weights decode the same


def test_medians_over_rounds_figure_by_figure() -> None:
    from rounds import medians

    rounds = [
        {
            "bleu": 30.1,
            "tok_s": 100.0,
            "serve": {"p50_ms": 20.0, "lines": 800},
            "seconds": [0.1, 0.3],
            "on": "cpu",
        },
        {
            "bleu": 30.1,
            "tok_s": 130.0,
            "serve": {"p50_ms": 10.0, "lines": 800},
            "seconds": [0.2, 0.2],
            "on": "cpu",
        },
        {
            "bleu": 30.1,
            "tok_s": 90.0,
            "serve": {"p50_ms": 40.0, "lines": 800},
            "seconds": [0.3, 0.1],
            "on": "cpu",
        },
    ]
    assert medians(rounds) == {
        "bleu": 30.1,
        "tok_s": 100.0,
        "serve": {"p50_ms": 20.0, "lines": 800},
        "on": "cpu",
    }
    assert medians(rounds[:2])["tok_s"] == 115.0  # an even count: the mean of the middle two
