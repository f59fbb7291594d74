"""benchmarks/gpu_check.sh in its CPU smoke mode: every part runs and records figures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqcli.device import has_native_bf16

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # the whole device script in its CPU mode (about 25 s)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("gpu-check")
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    command = [
        "bash",
        str(ROOT / "benchmarks" / "gpu_check.sh"),
        "--device",
        "cpu",
        "--smoke",
        "--out",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "gpu_check.json" in result.stderr
    headers = re.findall(r"^\[[0-9:]+\] == (\w+)$", (out / "gpu_check.log").read_text(), re.MULTILINE)
    assert headers == ["tests", "training", "decoding_speed", "training_speed"]  # one header a part
    return json.loads((out / "gpu_check.json").read_text())


def test_the_smoke_check_records_every_part(report: dict) -> None:
    assert report["missing_imports"] == {}
    assert report["machine"]["device"] == "cpu"
    for name in ("tests", "training", "decoding_speed", "training_speed"):
        assert "error" not in report[name], report[name]
        assert report[name]["seconds"] > 0
    tests = report["tests"]
    assert tests["passed"] > 0 and tests["failed"] == tests["errors"] == 0 and tests["exit_code"] == 0
    training = report["training"]
    assert training["steps"] == 6
    for key in ("valid_bleu", "test_bleu_greedy", "test_bleu_beam5", "test_chrf_greedy", "test_chrf_beam5"):
        assert 0 <= training[key] <= 100
    assert training["target_tokens_per_second"] > 0
    for beam in ("greedy", "beam5"):
        assert report["decoding_speed"][f"{beam}_sentences_per_second_generation"] > 0


def test_training_speed_compares_seqcli_with_plain_pytorch(report: dict) -> None:
    speed = report["training_speed"]
    precisions = ["fp32", "bf16"] if has_native_bf16(torch.device("cpu")) else ["fp32"]
    for feeding in ("input_feeding", "no_input_feeding"):
        for precision in precisions:
            figures = speed[f"{feeding}_{precision}"]
            assert figures["seqcli_target_tokens_per_second"] > 0
            assert figures["plain_pytorch_target_tokens_per_second"] > 0
            # the plain loop is the same architecture: the same number of weights
            assert figures["seqcli_parameters"] == figures["plain_pytorch_parameters"]
    assert (
        speed["input_feeding_fp32"]["seqcli_parameters"] > speed["no_input_feeding_fp32"]["seqcli_parameters"]
    )


def test_a_missing_corpus_fails_its_parts_only(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu",
               "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    # Only the corpus is missing here; the device tests would run, so they are left to the test above.
    result = subprocess.run([*command, "--skip-tests"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    for name in ("training", "decoding_speed", "training_speed"):
        assert "nowhere" in report[name]["error"]
