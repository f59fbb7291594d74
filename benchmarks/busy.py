"""seqcli on a busy machine: training, file translation and serving beside other processes.

Each measurement runs on a quiet machine and beside one and two busy processes (a Python loop
spinning on a core, as a second training, a browser or an indexer would), for this checkout and,
with --before, for an older checkout of seqcli (run from its own tree with this environment's
Python), one after the other and repeated; the tables give medians.

  * training: `seqcli train --config configs/dates.toml` (the `make demo` model) for
    --train-minutes, no validation until the end; target tokens per second of training
    (log.jsonl) and updates made;
  * file translation: the dates test set (1,000 lines, greedy), lines per second, whole command;
  * serving: `seqcli serve` answering --requests requests of 8 lines from 4 client threads,
    lines per second.

    python benchmarks/busy.py --before /tmp/seqcli-before --out benchmarks/results/busy-cpu.json

(`git worktree add /tmp/seqcli-before COMMIT` makes the older checkout.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from provenance import REPO, provenance, write_result

DATES = REPO / "data" / "dates"
BUSY_LOOP = "while True: pass"


def seqcli(tree: Path) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run the seqcli of a source tree (run it with the tree as
    the working directory: `python -m` looks there before PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(tree)
    return [sys.executable, "-m", "seqcli"], env


@contextmanager
def busy_processes(count: int):
    """count processes that each keep a core busy, for the duration of the block."""
    spinners = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]
    time.sleep(1.0 if count else 0.0)  # let the scheduler see them
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def measure_training(tree: Path, work: Path, minutes: float) -> dict[str, float]:
    command, env = seqcli(tree)
    run_dir = work / "train"
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.monotonic()
    subprocess.run(
        [*command, "train", "--config", str(REPO / "configs" / "dates.toml"), "--out", str(run_dir),
         "--train", str(DATES / "train"), "--valid", str(DATES / "valid"),
         "--max-minutes", str(minutes), "--set", "train.eval_every=1000000"],
        env=env, check=True, capture_output=True, cwd=tree,
    )  # fmt: skip
    wall = time.monotonic() - started
    last = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()][-1]
    return {
        "updates": last["step"],
        "target_tokens_per_second": last["target_tokens_per_second"],
        "wall_seconds": round(wall, 1),
    }


def measure_translation(tree: Path, run_dir: Path) -> dict[str, float]:
    command, env = seqcli(tree)
    lines = len((DATES / "test.src").read_text(encoding="utf-8").splitlines())
    started = time.monotonic()
    subprocess.run(
        [*command, "translate", str(run_dir), "--input", str(DATES / "test.src"), "--output", os.devnull],
        env=env, check=True, capture_output=True, cwd=tree,
    )  # fmt: skip
    return {"lines_per_second": round(lines / (time.monotonic() - started), 1)}


def measure_serving(tree: Path, run_dir: Path, work: Path, requests: int) -> dict[str, float]:
    command, env = seqcli(tree)
    log = work / "serve.log"
    with open(log, "w") as handle:
        server = subprocess.Popen(
            [*command, "serve", str(run_dir), "--port", "0"], env=env, stderr=handle, cwd=tree
        )
    try:
        url = _server_url(log, server)
        sources = (DATES / "test.src").read_text(encoding="utf-8").splitlines()
        batches = [sources[(8 * i) % 992 : (8 * i) % 992 + 8] for i in range(requests)]
        errors: list[str] = []

        def client(share: list[list[str]]) -> None:
            with httpx.Client(timeout=300) as http:
                for text in share:
                    if http.post(f"{url}/translate", json={"text": text}).status_code != 200:
                        errors.append("status")

        clients = [threading.Thread(target=client, args=(batches[i::4],)) for i in range(4)]
        started = time.monotonic()
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        seconds = time.monotonic() - started
        if errors:
            raise RuntimeError(f"serve: {len(errors)} requests failed")
        return {"lines_per_second": round(8 * requests / seconds, 1)}
    finally:
        server.terminate()
        server.wait(timeout=60)


def _server_url(log: Path, server: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", log.read_text())
        if found:
            return found.group(1)
        time.sleep(0.1)
    raise RuntimeError(f"serve did not start: {log.read_text()[-500:]}")


def trained_run(work: Path, tree: Path) -> Path:
    """A dates model for translation and serving, trained with the older checkout (a newer
    seqcli reads an older run directory, not the other way round)."""
    run_dir = work / "model"
    command, env = seqcli(tree)
    subprocess.run(
        [*command, "train", "--config", str(REPO / "configs" / "dates.toml"), "--out", str(run_dir),
         "--train", str(DATES / "train"), "--valid", str(DATES / "valid"),
         "--max-steps", "300", "--max-minutes", "0", "--eval-every", "300"],
        env=env, check=True, capture_output=True, cwd=tree,
    )  # fmt: skip
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path, help="An older seqcli source tree to compare with.")
    parser.add_argument("--busy", default="0,1,2", help="Numbers of busy processes to measure beside.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-minutes", type=float, default=0.5)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = provenance()
    trees = {"after": REPO, **({"before": args.before.resolve()} if args.before else {})}
    if args.before:
        started["before_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=args.before, capture_output=True, text=True
        ).stdout.strip()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="seqcli-busy-") as tmp:
        work = Path(tmp)
        run_dir = trained_run(work, trees.get("before", REPO))
        for repeat in range(args.repeats):
            for busy in [int(b) for b in args.busy.split(",")]:
                for version, tree in trees.items():
                    with busy_processes(busy):
                        row = {
                            "version": version,
                            "busy": busy,
                            "repeat": repeat,
                            "load_average": round(os.getloadavg()[0], 2),
                            "train": measure_training(tree, work, args.train_minutes),
                            "translate": measure_translation(tree, run_dir),
                            "serve": measure_serving(tree, run_dir, work, args.requests),
                        }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    table = summarize(rows)
    print(table)
    if args.out:
        write_result(args.out, {"rows": rows, "table": table}, started)
        print(f"wrote {args.out}")


def summarize(rows: list[dict[str, Any]]) -> str:
    """A markdown table of medians over the repeats, one row per version and busy count."""
    lines = [
        "| busy processes | version | training target tok/s | updates | training wall s "
        "| translate lines/s | serve lines/s |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    keys = sorted({(r["busy"], r["version"]) for r in rows}, key=lambda k: (k[0], k[1] != "before"))
    for busy, version in keys:
        group = [r for r in rows if (r["busy"], r["version"]) == (busy, version)]

        def median(part: str, name: str, group: list[dict[str, Any]] = group) -> float:
            return statistics.median(r[part][name] for r in group)

        lines.append(
            f"| {busy} | {version} | {median('train', 'target_tokens_per_second'):,.0f} "
            f"| {median('train', 'updates'):.0f} | {median('train', 'wall_seconds'):.0f} "
            f"| {median('translate', 'lines_per_second'):,.0f} | {median('serve', 'lines_per_second'):,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
