"""Corpus size against memory and start-up time: `seqcli train` with no config on synthetic corpora.

For each size (pairs), a corpus of natural-language-like text is generated once under --work:
words drawn from a Zipf distribution over 30,000 types per side, 4 to 30 words a line. Then
`seqcli train` runs with its defaults for 100 updates (one validation at the end, no
length-penalty search) and one torch thread, while this script samples the process's resident
memory. Recorded per size: peak RSS (VmHWM), seconds until the store is written, until the
first update (the start line comes just before it) and through 100 updates, and the largest
resident memory sampled before and after the store is written.

    python benchmarks/scale.py --sizes 100000 1000000 10000000 --work runs/scale
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from process_memory import memory_mib
from provenance import REPO, provenance, write_result

RESULTS = REPO / "benchmarks" / "results" / "scale.json"
TYPES = 30_000
CHUNK = 100_000


def write_corpus(prefix: Path, pairs: int, seed: int) -> None:
    """PREFIX.src and PREFIX.tgt of `pairs` lines, written chunk by chunk."""
    if Path(f"{prefix}.tgt").exists():
        return
    rng = np.random.default_rng(seed)
    for side in ("src", "tgt"):
        words = np.array([f"{side[0]}{i:x}" for i in range(TYPES)])
        path = Path(f"{prefix}.{side}.partial")
        with open(path, "w", encoding="utf-8") as out:
            for start in range(0, pairs, CHUNK):
                n = min(CHUNK, pairs - start)
                lengths = rng.integers(4, 31, n)
                ids = np.minimum(rng.zipf(1.3, lengths.sum()) - 1, TYPES - 1)
                tokens = words[ids]
                cuts = np.cumsum(lengths)[:-1]
                out.writelines(" ".join(line) + "\n" for line in np.split(tokens, cuts))
        path.rename(f"{prefix}.{side}")


def measure(size: int, work: Path) -> dict[str, Any]:
    data = work / f"data-{size}"
    data.mkdir(parents=True, exist_ok=True)
    write_corpus(data / "train", size, seed=size)
    write_corpus(data / "valid", 500, seed=1)
    run_dir = work / f"run-{size}"
    subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    seqcli = str(Path(sys.executable).parent / "seqcli")
    command = [
        seqcli, "train", "--train", str(data / "train"), "--valid", str(data / "valid"),
        "--max-steps", "100", "--eval-every", "100", "--device", "cpu", "--out", str(run_dir),
        "--set", "train.tune_length_penalty=", "--threads", "1",
    ]  # fmt: skip
    started, wall_start = time.monotonic(), time.time()
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    peak = [0.0]
    resident: list[tuple[float, float]] = []  # (seconds, RSS MiB): which phase holds the peak

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], memory_mib(process.pid, "VmHWM") or 0.0)
            resident.append((time.time() - wall_start, memory_mib(process.pid) or 0.0))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    first_update = None
    lines = []
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line.rstrip())
        if first_update is None and "parameters" in line:
            first_update = time.monotonic() - started
    process.wait()
    sampler.join()
    if process.returncode:
        raise SystemExit(f"size {size}: seqcli train failed:\n" + "\n".join(lines[-5:]))
    store = run_dir / "train.store" / "store.json"
    to_store = store.stat().st_mtime - wall_start
    record = {
        "pairs": size,
        "peak_rss_mib": round(peak[0], 1),
        # sampled every 0.2 s: the tokenizer's training and the store's writing, then training
        "peak_rss_mib_to_store": round(max((m for t, m in resident if t <= to_store), default=0.0), 1),
        "peak_rss_mib_training": round(max((m for t, m in resident if t > to_store), default=0.0), 1),
        "seconds_to_store": round(to_store, 1),
        "seconds_to_first_update": round(first_update or 0.0, 1),
        "seconds_through_100_updates": round(time.monotonic() - started, 1),
        "store_mib": round(sum(f.stat().st_size for f in store.parent.iterdir()) / 2**20, 1),
        "corpus_mib": round(
            sum(Path(f"{data / 'train'}.{s}").stat().st_size for s in ("src", "tgt")) / 2**20, 1
        ),
        "start_lines": [line for line in lines if "tokenizer" in line or "warning" in line],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    print(record, file=sys.stderr, flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "scale")
    args = parser.parse_args()
    started = provenance()
    records = [measure(size, args.work) for size in args.sizes]
    write_result(RESULTS, {"runs": records}, started)
    for r in records:
        seconds = (r["seconds_to_store"], r["seconds_to_first_update"], r["seconds_through_100_updates"])
        print(
            f"{r['pairs']:>11,} pairs: peak RSS {r['peak_rss_mib']:,.0f} MiB; seconds to the store "
            f"{seconds[0]:.0f}, to the first update {seconds[1]:.0f}, through 100 updates {seconds[2]:.0f}"
        )


if __name__ == "__main__":
    main()
