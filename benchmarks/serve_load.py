"""Load on `seqcli serve` over loopback, beside `seqcli translate` of the same lines from a file.

1. Plans CLIENTS x REQUESTS requests of 1 to MAX_REQUEST_LINES lines, taken in turn from
   LINES (a text file, cycled), and translates all planned lines with `seqcli translate`:
   once its model has loaded, they are written to its stdin at once, which it reads as it
   reads a file (full chunks), and lines/s runs until the last answer.
2. Starts `seqcli serve` on 127.0.0.1 (a free port), lets CLIENTS clients send their requests
   one after another, all clients at once, and reports requests/s, lines/s and the latency
   percentiles; every answer is checked against the file translation (none lost, none wrong).
   The server is then stopped with SIGTERM and must exit 0.
3. The latency of one line written to `seqcli translate`'s stdin with the model loaded
   (greedy; the median of LATENCY_REPEATS lines, each written after a pause).

--rounds N repeats steps 1-3 N times: the figures are each figure's median over the rounds
(a latency's "max" the median of the rounds' maxima), and every round is kept under "rounds".

Writes JSON and a markdown table to --out (benchmarks/results/serve-load.{json,md}). The
load average is recorded before and after: on a shared machine it explains the spread.

    python benchmarks/serve_load.py --run-dir runs/dates --lines data/dates/test.src
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from provenance import provenance, write_result
from rounds import medians

from seqcli.textio import write_text_atomic

SEQCLI = [sys.executable, "-m", "seqcli"]
ENV = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
TIMEOUT = 600.0  # seconds: no single step of the benchmark may take longer


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def plan_requests(
    lines: list[str], clients: int, requests: int, max_lines: int, seed: int
) -> list[list[int]]:
    """Per request (client c's request r at index c * requests + r): the line numbers it sends."""
    rng = random.Random(seed)
    plan, taken = [], 0
    for _ in range(clients * requests):
        size = rng.randint(1, max_lines)
        plan.append([(taken + i) % len(lines) for i in range(size)])
        taken += size
    return plan


def translate_file(run_dir: str, lines: list[str], options: list[str]) -> tuple[list[str], dict]:
    """`seqcli translate` of all lines at once: the translations, and lines/s once the model is loaded.

    The model loads first (one line, answered); then every line is written to stdin at once,
    which reads as a file does (full chunks), and the clock runs until the last answer.
    """
    process = subprocess.Popen(
        [*SEQCLI, "translate", run_dir, *options],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(lines[0] + "\n")
    process.stdin.flush()
    process.stdout.readline()  # the model is loaded
    stdin = process.stdin

    def write() -> None:
        stdin.write("".join(line + "\n" for line in lines))
        stdin.close()

    start = time.perf_counter()
    threading.Thread(target=write, daemon=True).start()
    translations = [line.rstrip("\n") for line in process.stdout]
    seconds = time.perf_counter() - start
    process.wait(timeout=TIMEOUT)
    assert len(translations) == len(lines), "seqcli translate lost lines"
    return translations, {
        "lines": len(lines),
        "seconds": round(seconds, 3),
        "lines_per_second": round(len(lines) / seconds, 1),
    }


def start_server(run_dir: str, options: list[str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [*SEQCLI, "serve", run_dir, "--host", "127.0.0.1", "--port", "0", *options],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=ENV,
        )
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"seqcli serve ended:\n{log.read_text()}")
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", log.read_text())
        if found:
            try:
                if httpx.get(found[1] + "/health", timeout=5).status_code == 200:
                    return process, found[1]
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("seqcli serve did not start in time")


async def post_json(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes
) -> Any:
    """One POST on a kept-alive HTTP/1.1 connection; the parsed answer, or None unless 200.

    A few lines of asyncio instead of an HTTP library: on a 2-core machine the client's own
    CPU time is taken from the server it measures.
    """
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    headers = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    length = int(re.search(r"content-length: *(\d+)", headers)[1])  # type: ignore[index]
    answer = await reader.readexactly(length)
    return json.loads(answer) if headers.startswith("http/1.1 200") else None


async def run_load(
    url: str, lines: list[str], plan: list[list[int]], clients: int, body_options: dict[str, Any]
) -> tuple[list[float], list[list[str] | None], float]:
    """Every client sends its requests one after another; latencies, answers and wall seconds."""
    host, port = url.removeprefix("http://").split(":")
    per_client = len(plan) // clients
    latencies: list[float] = [0.0] * len(plan)
    answers: list[list[str] | None] = [None] * len(plan)

    async def one_client(c: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        for index in range(c * per_client, (c + 1) * per_client):
            body = json.dumps({"text": [lines[i] for i in plan[index]], **body_options}).encode()
            start = time.perf_counter()
            answer = await post_json(reader, writer, "/translate", body)
            latencies[index] = time.perf_counter() - start
            if answer is not None:
                answers[index] = [t["text"] for t in answer["translations"]]
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(one_client(c) for c in range(clients)))
    return latencies, answers, time.perf_counter() - start


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def one_line_latency(run_dir: str, lines: list[str], repeats: int, pause: float) -> dict[str, Any]:
    """Seconds from writing one line to `seqcli translate`'s stdin to reading its answer."""
    process = subprocess.Popen(
        [*SEQCLI, "translate", run_dir, "--beam-size", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert process.stdin is not None and process.stdout is not None
    answers: queue.Queue[str] = queue.Queue()
    stdout = process.stdout

    def read() -> None:
        for line in stdout:
            answers.put(line)

    threading.Thread(target=read, daemon=True).start()

    def ask(line: str) -> float:
        assert process.stdin is not None
        start = time.perf_counter()
        process.stdin.write(line + "\n")
        process.stdin.flush()
        answers.get(timeout=TIMEOUT)
        return time.perf_counter() - start

    ask(lines[0])  # the model loads before the first answer
    seconds = []
    for i in range(repeats):
        time.sleep(pause)
        seconds.append(ask(lines[(i + 1) % len(lines)]))
    process.stdin.close()
    process.wait(timeout=TIMEOUT)
    return {
        "repeats": repeats,
        "median_seconds": round(statistics.median(seconds), 4),
        "max_seconds": round(max(seconds), 4),
        "all_seconds": [round(s, 4) for s in seconds],
    }


def markdown(figures: dict[str, Any], started: dict[str, Any]) -> str:
    file, load, line = figures["file_translate"], figures["serve"], figures["one_line_latency"]
    return "\n".join(
        [
            f"# seqcli serve under load ({started['date'][:10]}, commit {(started['commit'] or '')[:7]})",
            "",
            f"Machine: {started['hardware']['cpu']}, {started['hardware']['cores']} cores. "
            f"Load average before/after: "
            f"{figures['load_average_before']} / {figures['load_average_after']}.",
            f"Run: `{figures['run_dir']}`; options: `{' '.join(figures['options']) or '(run defaults)'}`;",
            f"{load['clients']} clients x {load['requests_per_client']} requests of "
            f"1-{load['max_request_lines']} lines ({load['lines']} lines).",
            "",
            "| what | lines/s | requests/s | p50 latency | p99 latency |",
            "|---|---:|---:|---:|---:|",
            f"| `seqcli translate`, all lines at once | {file['lines_per_second']} | | | |",
            f"| `seqcli serve`, {load['clients']} concurrent clients | {load['lines_per_second']} | "
            f"{load['requests_per_second']} | {load['p50_ms']} ms | {load['p99_ms']} ms |",
            "",
            f"Server / file lines/s: {figures['serve_over_file']:.2f}. Answers: {load['correct']} correct, "
            f"{load['wrong']} wrong, {load['lost']} lost; mean batch {load['mean_batch_lines']} lines; "
            f"server exit status after SIGTERM: {load['exit_status']}.",
            f"One line on `seqcli translate`'s stdin (greedy, model loaded): median "
            f"{line['median_seconds']} s, max {line['max_seconds']} s over {line['repeats']} lines.",
            *_rounds_lines(figures.get("rounds", [])),
            "",
        ]
    )


def _rounds_lines(rounds: list[dict[str, Any]]) -> list[str]:
    """The figures above are medians when the measure was repeated: each round's own."""
    if not rounds:
        return []
    translate = ", ".join(str(r["file_translate"]["lines_per_second"]) for r in rounds)
    serve = ", ".join(str(r["serve"]["lines_per_second"]) for r in rounds)
    ratio = ", ".join(str(round(r["serve_over_file"], 2)) for r in rounds)
    return [
        "",
        f"Medians of {len(rounds)} rounds. By round: `seqcli translate` lines/s {translate};"
        f" `seqcli serve` lines/s {serve}; serve / file {ratio}.",
    ]


def measure(args: argparse.Namespace, source: list[str], plan: list[list[int]]) -> dict[str, Any]:
    """One round: the file translation, the server under load, and one line on stdin."""
    planned_lines = [source[i] for request in plan for i in request]
    options = [] if args.beam_size is None else ["--beam-size", str(args.beam_size)]
    body_options = {} if args.beam_size is None else {"beam_size": args.beam_size}
    before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        expected, file_figures = translate_file(args.run_dir, planned_lines, options)
        process, url = start_server(args.run_dir, options, Path(tmp) / "serve.log")
        try:
            httpx.post(
                url + "/translate", json={"text": source[:8], **body_options}, timeout=TIMEOUT
            )  # warm-up
            health_before = httpx.get(url + "/health").json()
            latencies, answers, seconds = asyncio.run(run_load(url, source, plan, args.clients, body_options))
            health_after = httpx.get(url + "/health").json()
        finally:
            process.send_signal(signal.SIGTERM)
            exit_status = process.wait(timeout=TIMEOUT)
    offsets = [0]
    for request in plan:
        offsets.append(offsets[-1] + len(request))
    correct = sum(answer == expected[offsets[k] : offsets[k + 1]] for k, answer in enumerate(answers))
    lost = sum(answer is None for answer in answers)
    batches = health_after["batches"] - health_before["batches"]
    serve_figures = {
        "clients": args.clients,
        "requests_per_client": args.requests,
        "max_request_lines": args.max_request_lines,
        "requests": len(plan),
        "lines": len(planned_lines),
        "seconds": round(seconds, 3),
        "requests_per_second": round(len(plan) / seconds, 1),
        "lines_per_second": round(len(planned_lines) / seconds, 1),
        "p50_ms": round(1000 * percentile(latencies, 50), 1),
        "p99_ms": round(1000 * percentile(latencies, 99), 1),
        "max_ms": round(1000 * max(latencies), 1),
        "correct": correct,
        "wrong": len(plan) - correct - lost,
        "lost": lost,
        "batches": batches,
        "mean_batch_lines": round((health_after["lines"] - health_before["lines"]) / max(batches, 1), 1),
        "exit_status": exit_status,
    }
    return {
        "run_dir": args.run_dir,
        "options": options,
        "load_average_before": before,
        "load_average_after": load_average(),
        "file_translate": file_figures,
        "serve": serve_figures,
        "serve_over_file": serve_figures["lines_per_second"] / file_figures["lines_per_second"],
        "one_line_latency": one_line_latency(args.run_dir, source, args.latency_repeats, pause=0.5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--lines", required=True, type=Path, help="Source lines, one per line.")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=25, help="Requests per client.")
    parser.add_argument("--max-request-lines", type=int, default=8)
    parser.add_argument("--beam-size", type=int, help="[default: the run's]")
    parser.add_argument("--latency-repeats", type=int, default=9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="Repeat the measure; report the medians.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve-load"))
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds: {args.rounds} is not a positive count")

    source = [line for line in args.lines.read_text(encoding="utf-8").splitlines() if line.strip()]
    plan = plan_requests(source, args.clients, args.requests, args.max_request_lines, args.seed)
    started = provenance()
    rounds = []
    for number in range(1, args.rounds + 1):
        rounds.append(measure(args, source, plan))
        if args.rounds > 1:
            print(f"round {number}/{args.rounds} measured", file=sys.stderr, flush=True)
    figures = medians(rounds)
    figures["load_average_before"] = rounds[0]["load_average_before"]
    figures["load_average_after"] = rounds[-1]["load_average_after"]
    if args.rounds > 1:
        figures["rounds"] = rounds
    print(json.dumps(figures, indent=2))
    write_result(args.out.with_suffix(".json"), figures, started)
    write_text_atomic(args.out.with_suffix(".md"), markdown(figures, started))
    clean = all(
        r["serve"]["correct"] == r["serve"]["requests"] and r["serve"]["exit_status"] == 0 for r in rounds
    )
    if not clean:
        raise SystemExit("seqcli serve lost or changed answers, or did not stop cleanly")


if __name__ == "__main__":
    main()
