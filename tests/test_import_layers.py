"""The import layers in pyproject.toml hold, and a wrong-way import breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).parents[1]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with root's pyproject.toml over root's seqcli package."""
    lint = Path(sys.executable).parent / "lint-imports"
    return subprocess.run(
        [str(lint), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_package_keeps_its_layers() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


# Wrong-way imports the contract refuses: a part importing a workflow, the reference model
# importing the faster kernels built on it, and the training loop importing a task.
WRONG_WAY = {
    "distributed.py": ("from seqcli.translate import Translator", "seqcli.distributed -> seqcli.translate"),
    "model/encoder.py": ("from seqcli.fast import PARTS", "seqcli.model.encoder -> seqcli.fast"),
    "train.py": (
        "from seqcli.translation_task import TranslationTask",
        "seqcli.train -> seqcli.translation_task",
    ),
}


def test_a_wrong_way_import_is_refused(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "seqcli", tmp_path / "seqcli", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for module, (line, _) in WRONG_WAY.items():
        with open(tmp_path / "seqcli" / module, "a") as handle:
            handle.write(f"\n{line}  # noqa: E402\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    for _, reported in WRONG_WAY.values():
        assert reported in result.stdout, result.stdout
