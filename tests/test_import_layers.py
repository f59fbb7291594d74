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


def test_a_lower_layer_importing_a_higher_one_is_refused(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "seqcli", tmp_path / "seqcli", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "seqcli" / "distributed.py", "a") as module:
        module.write("\nfrom seqcli.translate import Translator  # noqa: E402\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "seqcli.distributed -> seqcli.translate" in result.stdout, result.stdout
