"""`seqcli serve` as a real process on 127.0.0.1, queried over HTTP, against `seqcli translate`."""

from __future__ import annotations

import hashlib
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import ENV, run_cli

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

START_TIMEOUT = 120.0  # seconds for the model to load on a busy machine
LIMITS = ("--max-lines", "8", "--max-chars", "300", "--max-beam-size", "6")


class Server:
    """`seqcli serve ARGS --port 0` in its own process; the port is read from its first line."""

    def __init__(self, args: list[str], log: Path):
        self.log = log
        with open(log, "w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "seqcli", "serve", *args, "--host", "127.0.0.1", "--port", "0"],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=ENV,
            )
        self.url = self._wait_until_up()
        self.client = httpx.Client(base_url=self.url, timeout=120.0)

    def _wait_until_up(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.log.read_text())
            if found:
                try:
                    if httpx.get(found[1] + "/health", timeout=5).status_code == 200:
                        return found[1]
                except httpx.TransportError:
                    pass  # uvicorn has not taken the socket over yet
            time.sleep(0.1)
        raise AssertionError(f"no server within {START_TIMEOUT} s:\n{self.log.read_text()}")

    def translate(self, body: dict[str, Any]) -> Any:
        response = self.client.post("/translate", json=body)
        assert response.status_code == 200, response.text
        return response.json()["translations"]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send sig; the exit status once the process has ended."""
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.fixture(scope="module")
def server(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server([str(trained_run), *LIMITS], tmp_path_factory.mktemp("serve") / "stderr.log")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def source_lines(toy_dir: Path) -> list[str]:
    lines = (toy_dir / "test.src").read_text().splitlines()[:30]
    return [*lines[:10], "", *lines[10:]]  # an empty line gives an empty line


def cli_translate(run_dirs: list[Path], lines: list[str], *options: str) -> list[str]:
    text = "\n".join(lines) + "\n"
    return run_cli("translate", *map(str, run_dirs), *options, input_text=text).stdout.splitlines()


def in_requests(lines: list[str], size: int) -> list[list[str]]:
    return [lines[start : start + size] for start in range(0, len(lines), size)]


def served(server: Server, lines: list[str], options: dict[str, Any], size: int = 8) -> list[Any]:
    """Every line, sent in requests of `size` lines, all at once from 8 threads."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = pool.map(lambda text: server.translate({"text": text, **options}), in_requests(lines, size))
        return [translation for answer in answers for translation in answer]


@pytest.mark.parametrize(
    ("options", "cli_options"),
    [
        ({"beam_size": 1}, ["--beam-size", "1"]),
        ({"beam_size": 4, "n_best": 3}, ["--beam-size", "4", "--n-best", "3"]),
        (
            {"length_penalty": 0.0, "max_length_ratio": 0.5},
            ["--length-penalty", "0", "--max-length-ratio", "0.5"],
        ),
        ({}, []),  # the run's own decode settings
    ],
)
def test_concurrent_requests_get_what_translate_writes(
    server: Server,
    trained_run: Path,
    source_lines: list[str],
    options: dict[str, Any],
    cli_options: list[str],
) -> None:
    expected = cli_translate([trained_run], source_lines, *cli_options)
    before = server.client.get("/health").json()
    translations = served(server, source_lines, options, size=3)
    after = server.client.get("/health").json()
    assert ["\t".join(h["text"] for h in t["hypotheses"]) for t in translations] == expected
    assert [t["text"] for t in translations] == [line.split("\t")[0] for line in expected]
    for t in translations:
        scores = [h["normalized_score"] for h in t["hypotheses"]]
        assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)
    assert after["lines"] - before["lines"] == len(source_lines)
    # 11 requests from 8 threads at once: the worker searched several of them together.
    assert after["batches"] - before["batches"] < len(in_requests(source_lines, 3))
    assert after["pending"] == 0


def test_alignments_equal_the_alignments_file(
    server: Server, trained_run: Path, source_lines: list[str], tmp_path: Path
) -> None:
    links = tmp_path / "links.txt"
    expected = cli_translate([trained_run], source_lines, "--beam-size", "2", "--alignments", str(links))
    translations = served(server, source_lines, {"beam_size": 2, "alignments": True})
    assert [t["text"] for t in translations] == expected
    assert [t["alignment"] for t in translations] == links.read_text().splitlines()
    assert translations[10]["alignment"] == "" and translations[0]["alignment"]


def test_info_names_the_model_tokenizers_and_version(server: Server, trained_run: Path) -> None:
    import seqcli

    info = server.client.get("/info").json()
    assert info["seqcli_version"] == seqcli.__version__
    assert info["run_dirs"] == [str(trained_run)]
    assert info["models"][0]["hidden_size"] == 64 and info["models"][0]["attention"]
    for side in ("src", "tgt"):
        digest = hashlib.sha256((trained_run / f"{side}.spm").read_bytes()).hexdigest()
        assert info["tokenizers"][f"{side}_sha256"] == digest
    assert info["limits"]["max_lines"] == 8 and info["limits"]["max_beam_size"] == 6


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"text": ["March 3, 2001"', 422, "body: Invalid JSON"),
        (b'["March 3, 2001"]', 422, "body: Input should be an object"),
        (b"{}", 422, "text: Field required"),
        (b'{"text": "March 3, 2001"}', 422, "text: Input should be a valid array"),
        (b'{"text": ["a", 7]}', 422, "text[1]: Input should be a valid string"),
        (b'{"text": ["a"], "beam": 3}', 422, "beam: Extra inputs are not permitted"),
        (b'{"text": ["a"], "beam_size": 0}', 422, "beam_size: Input should be greater than or equal to 1"),
        (b'{"text": ["a"], "beam_size": "3"}', 422, "beam_size: Input should be a valid integer"),
        (b'{"text": ["a"], "beam_size": 7}', 422, "beam_size: 7 exceeds the maximum 6"),
        (b'{"text": ["a"], "beam_size": 2, "n_best": 3}', 422, "n_best: 3 exceeds beam_size 2"),
        (b'{"text": ["a"], "max_length_ratio": 1e9}', 422, "max_length_ratio: Input should be less than"),
        (b'{"text": ["a"], "alignments": "yes"}', 422, "alignments: Input should be a valid boolean"),
        (b'{"text": ["a\\nb"]}', 422, "text[0]: one line per item"),
        (b'{"text": ["a\\u0000b"]}', 422, "text[0]: one line per item"),
        (b'{"text": ["\\ud800"]}', 422, "body: Invalid JSON"),  # a lone surrogate is no text
        (b'{"text": ["a", "b", "c", "d", "e", "f", "g", "h", "i"]}', 413, "text: 9 lines; at most 8"),
        (b'{"text": ["' + b"x" * 301 + b'"]}', 413, "text: 301 characters; at most 300"),
        (b'{"text": ["' + b" " * 10_000_000 + b'"]}', 413, "body: "),
    ],
)
def test_bad_requests_are_refused_naming_the_field(
    server: Server, body: bytes, status: int, message: str
) -> None:
    response = server.client.post("/translate", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["detail"].startswith(message), response.text
    assert server.client.get("/health").json()["status"] == "ok"


def test_other_paths_and_methods_are_refused(server: Server) -> None:
    assert server.client.get("/translate").status_code == 405
    assert server.client.get("/../../etc/passwd").status_code == 404
    assert server.client.post("/translate", json={"text": []}).json() == {"translations": []}


def test_a_broken_run_directory_or_a_taken_port_is_refused_at_start(
    trained_run: Path, tmp_path: Path
) -> None:
    result = run_cli("serve", str(tmp_path / "no-run"), "--port", "0", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"seqcli: error: {tmp_path / 'no-run'}: run directory not found"
    ]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", str(trained_run), "--port", str(port), check=False)
    assert result.returncode == 1
    assert re.fullmatch(rf"seqcli: error: --host 127.0.0.1 --port {port}: .*in use\n", result.stderr)


@pytest.mark.parametrize(
    "sig",
    [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)],  # one path; Ctrl-C: slow
)
def test_a_signal_finishes_the_requests_in_flight_then_exits_0(
    trained_run: Path, source_lines: list[str], tmp_path: Path, sig: int
) -> None:
    """An ensemble (one run twice) whose idle model waits 3 s for company: the signal comes
    while 4 requests wait, and all 4 are answered as `seqcli translate RUN RUN` answers."""
    lines = source_lines[:16]
    expected = cli_translate([trained_run, trained_run], lines, "--beam-size", "2")
    server = Server([str(trained_run), str(trained_run), "--max-wait-ms", "3000"], tmp_path / "stderr.log")
    refused = server.client.post("/translate", json={"text": ["a"], "alignments": True})
    assert refused.status_code == 422 and "alignments: need a single run directory" in refused.text
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = pool.map(
            lambda text: server.translate({"text": text, "beam_size": 2}), in_requests(lines, 4)
        )
        deadline = time.monotonic() + 60
        while server.client.get("/health").json()["pending"] < 4:
            assert time.monotonic() < deadline, "the requests never arrived"
            time.sleep(0.05)
        server.process.send_signal(sig)
        translations = [t["text"] for answer in answers for t in answer]
    assert server.stop() == 0, server.log.read_text()
    assert translations == expected
    assert "Traceback" not in server.log.read_text()


def test_the_cli_imports_no_server_or_torch_until_a_command_runs() -> None:
    code = "import sys, seqcli.cli; print(sorted({'torch', 'fastapi', 'uvicorn'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
