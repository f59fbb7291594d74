"""The explorer's speed: the search trace of beam 10 over 30-word sentences, served over HTTP by
`seqcli serve`, beside the same search without a trace; then, in headless Chromium, how long the
page takes to draw the search of a 100-piece sentence and to move its step slider.

    python benchmarks/explorer_speed.py --run RUN_DIR --data ../shared/data/multi30k --lang en

RUN_DIR is a run of the CPU recipe (configs/multi30k-en-de-cpu.toml); the sentences are the
valid split's words, joined and cut into 30-word lines. Prints and writes
benchmarks/results/explorer-cpu.json.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from provenance import REPO, provenance, write_result
from serve_load import percentile, start_server


def thirty_word_lines(path: Path, count: int, words: int = 30) -> list[str]:
    """count lines of exactly `words` words, from the file's words in order."""
    stream = path.read_text(encoding="utf-8").split()
    return [" ".join(stream[i * words : (i + 1) * words]) for i in range(count)]


class Serve:
    """`seqcli serve RUN_DIR` in its own process (serve_load.start_server), and a client."""

    def __init__(self, run_dir: Path, threads: int, quantize: bool, log: Path):
        options = ["--threads", str(threads), "--max-chars", "100000", *(["--quantize"] if quantize else [])]
        self.process, self.url = start_server(str(run_dir), options, log)
        self.client = httpx.Client(base_url=self.url, timeout=300)

    def timed(self, body: dict[str, Any]) -> tuple[float, int]:
        """Milliseconds for one POST /translate answered, and the answer's size in bytes."""
        start = time.perf_counter()
        response = self.client.post("/translate", json=body)
        elapsed = (time.perf_counter() - start) * 1000
        response.raise_for_status()
        return elapsed, len(response.content)

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=60)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 1),
        "p90": round(percentile(values, 90), 1),
        "max": round(max(values), 1),
    }


def page_times(url: str, line: str) -> dict[str, float]:
    """In Chromium: ms from Translate to the drawn search tree of `line` (beam 10), and the
    median ms of one step-slider move (the tree and the candidate table redrawn)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('run').options.length > 0")
        page.fill("#source", line)
        page.fill("#beam-size", "10")
        start = time.perf_counter()
        page.click("#translate")
        page.wait_for_function("document.querySelectorAll('#tree g.node').length > 0")
        drawn = (time.perf_counter() - start) * 1000
        moves = page.evaluate(
            """() => {
                const slider = document.getElementById('step'), times = [];
                for (let step = 1; step <= Number(slider.max); step++) {
                    const start = performance.now();
                    slider.value = String(step);
                    slider.dispatchEvent(new Event('input'));
                    times.push(performance.now() - start);
                }
                return times;
            }"""
        )
        browser.close()
    return {
        "translate_to_tree_ms": round(drawn, 1),
        "slider_move_median_ms": round(statistics.median(moves), 1),
        "slider_move_max_ms": round(max(moves), 1),
        "steps": len(moves),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, help="a run of the CPU recipe")
    parser.add_argument("--data", type=Path, required=True, help="the corpus folder (its valid.LANG)")
    parser.add_argument("--lang", default="en", help="the run's source language")
    parser.add_argument("--sentences", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="the server's torch threads")
    parser.add_argument("--quantize", action="store_true", help="serve with int8 dynamic quantization")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "explorer-cpu.json")
    args = parser.parse_args()

    started = provenance()
    lines = thirty_word_lines(args.data / f"valid.{args.lang}", args.sentences)
    server = Serve(args.run, args.threads, args.quantize, Path(tempfile.mkdtemp()) / "serve.log")
    try:
        for line in lines[:2]:  # warm up
            server.timed({"text": [line], "beam_size": 10, "trace": True})
        traced, plain, sizes = [], [], []
        for _ in range(args.rounds):
            for line in lines:
                elapsed, size = server.timed({"text": [line], "beam_size": 10, "trace": True})
                traced.append(elapsed)
                sizes.append(size)
                plain.append(server.timed({"text": [line], "beam_size": 10})[0])
        long_line = " ".join(thirty_word_lines(args.data / f"valid.{args.lang}", 8)[4:])  # 120 words
        (answer,) = server.client.post(
            "/translate", json={"text": [long_line], "beam_size": 10, "trace": True}
        ).json()["translations"]
        long_pieces = len(answer["trace"]["source_pieces"])
        long_ms, long_bytes = server.timed({"text": [long_line], "beam_size": 10, "trace": True})
        page = page_times(server.url, long_line) if shutil.which("chromium") else None
    finally:
        server.stop()

    figures = {
        "run": str(args.run),
        "sentences": f"{args.sentences} lines of 30 words from valid.{args.lang}, {args.rounds} rounds",
        "beam_size": 10,
        "threads": args.threads,
        "quantize": args.quantize,
        "trace_ms": summary(traced),
        "without_trace_ms": summary(plain),
        "trace_bytes_median": int(statistics.median(sizes)),
        "long_sentence": {
            "source_pieces": long_pieces,
            "trace_ms": round(long_ms, 1),
            "trace_bytes": long_bytes,
        },
        "page": page,
    }
    print(
        f"beam 10, 30 words: trace {figures['trace_ms']} ms, without trace {figures['without_trace_ms']} ms"
    )
    print(f"{long_pieces} source pieces: trace {long_ms:.0f} ms, {long_bytes:,} bytes; page {page}")
    write_result(args.out, figures, started)


if __name__ == "__main__":
    main()
