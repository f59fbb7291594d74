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
from urllib.parse import urlsplit

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
        self.signalled = False
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

    def send(self, sig: int) -> None:
        """Send sig now; stop() then only waits (a second signal could land after the server
        has restored the default handlers on its way out, and end it by that signal)."""
        self.signalled = True
        self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send sig unless send() did; the exit status once the process has ended."""
        self.client.close()
        if self.process.poll() is None and not self.signalled:
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
        server.send(sig)
        translations = [t["text"] for answer in answers for t in answer]
    assert server.stop() == 0, server.log.read_text()
    assert translations == expected
    assert "Traceback" not in server.log.read_text()


def test_a_signal_as_soon_as_the_server_says_it_listens_stops_it(trained_run: Path, tmp_path: Path) -> None:
    """The line is printed once seqcli's handlers are in place: a SIGTERM right after it, while
    uvicorn is still starting, stops the server gracefully instead of being lost."""
    log = tmp_path / "stderr.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "seqcli", "serve", str(trained_run), "--port", "0"], stderr=stderr, env=ENV
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "listening on" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.001)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
    finally:
        process.kill()
    assert "Traceback" not in log.read_text()


def test_the_cli_imports_no_server_or_torch_until_a_command_runs() -> None:
    code = "import sys, seqcli.cli; print(sorted({'torch', 'fastapi', 'uvicorn'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


# The explorer's API: search traces, scoring, the served runs, offline pages.


def trace_of(server: Server, line: str, **options: Any) -> dict[str, Any]:
    (translation,) = server.translate({"text": [line], "trace": True, **options})
    return translation


def path_to(steps: list[list[dict[str, Any]]], step: int, node: dict[str, Any]) -> list[str]:
    """The pieces of a node's hypothesis, following parents back through the kept slots."""
    pieces = [node["piece"]]
    for earlier in range(step - 1, 0, -1):
        (node,) = [n for n in steps[earlier - 1] if n["slot"] == node["parent"] and n["status"] == "kept"]
        pieces.insert(0, node["piece"])
    return pieces


@pytest.mark.parametrize("beam_size", [1, 3])
def test_a_trace_is_the_search_that_translate_runs(
    server: Server, trained_run: Path, source_lines: list[str], beam_size: int
) -> None:
    lines = source_lines[:6]
    expected = cli_translate([trained_run], lines, "--beam-size", str(beam_size), "--n-best", str(beam_size))
    for line, written in zip(lines, expected, strict=True):
        found = trace_of(server, line, beam_size=beam_size, n_best=beam_size)
        trace = found["trace"]
        assert "\t".join(h["text"] for h in found["hypotheses"]) == written
        assert trace["stop_reason"] and 1 <= len(trace["steps"]) <= trace["max_steps"]
        finished: list[tuple[float, list[str]]] = []
        for t, nodes in enumerate(trace["steps"], start=1):
            kept = [n for n in nodes if n["status"] != "pruned"]
            assert 1 <= len(kept) <= beam_size and len({n["slot"] for n in kept}) == len(kept)
            pruned = [n["score"] for n in nodes if n["status"] == "pruned"]
            if t < len(trace["steps"]) and pruned:  # the beam keeps the best candidates
                assert min(n["score"] for n in kept) >= max(pruned) - 1e-4
            for node in nodes:
                assert node["normalized_score"] == pytest.approx(  # both rounded to 4 decimals
                    node["score"] / ((5 + t) / 6) ** trace["length_penalty"], abs=2e-4
                )
                if node["status"] in ("finished", "ended"):
                    finished.append((node["score"], path_to(trace["steps"], t, node)))
        for hypothesis in trace["hypotheses"]:  # each answer is a finished node of the tree
            pieces = hypothesis["pieces"] + (
                ["</s>"] if hypothesis["steps"] > len(hypothesis["pieces"]) else []
            )
            assert (pytest.approx(hypothesis["score"], abs=1e-4), pieces) in finished
        if beam_size == 1:
            assert all(sum(n["status"] != "pruned" for n in nodes) == 1 for nodes in trace["steps"])


def test_a_trace_carries_the_attention_of_each_hypothesis(server: Server, source_lines: list[str]) -> None:
    line = source_lines[0]
    trace = trace_of(server, line, beam_size=2, n_best=2, alignments=True)
    aligned = server.translate({"text": [line], "beam_size": 2, "n_best": 2, "alignments": True})[0]
    for hypothesis in trace["trace"]["hypotheses"]:
        rows = hypothesis["attention"]
        assert len(rows) == len(hypothesis["pieces"]) + 1
        assert all(len(row) == len(trace["trace"]["source_pieces"]) for row in rows)
        assert all(sum(row) == pytest.approx(1.0, abs=1e-4) for row in rows)
    assert trace["alignment"] == aligned["alignment"]


def test_scoring_compares_teacher_forcing_with_free_running(
    server: Server, trained_run: Path, toy_dir: Path
) -> None:
    import torch

    from seqcli.corpus import pad
    from seqcli.translate import Translator
    from seqcli.vocab import BOS_ID, EOS_ID

    sources = (toy_dir / "test.src").read_text().splitlines()[:8]
    references = (toy_dir / "test.tgt").read_text().splitlines()[:8]
    greedy = cli_translate([trained_run], sources, "--beam-size", "1")
    translator = Translator.from_run_dir(trained_run, {}, torch.device("cpu"))
    divergences: set[int | None] = set()
    for source, reference, written in zip(sources, references, greedy, strict=True):
        scored = server.client.post("/score", json={"source": source, "reference": reference}).json()
        # Teacher forcing, computed here through the model's whole-sequence training pass.
        src = translator.src_tokenizer.encode([source])[0]
        gold = [*translator.tgt_tokenizer.encode([reference])[0], EOS_ID]
        with torch.inference_mode():
            readout = translator.model(pad([src]), torch.tensor([len(src)]), pad([[BOS_ID, *gold[:-1]]]))
            log_probs = torch.log_softmax(readout.logits[0].float(), dim=-1)
        expected = [float(log_probs[j, token]) for j, token in enumerate(gold)]
        assert [s["log_prob"] for s in scored["teacher_forced"]] == pytest.approx(expected, abs=1e-4)
        assert scored["teacher_forced_loss"] == pytest.approx(-sum(expected) / len(expected), abs=1e-4)
        # Free running is greedy search; its first divergence is where it leaves the reference.
        own = [s["piece"] for s in scored["free_running"]]
        assert translator.tgt_tokenizer.decode_pieces([own[:-1] if own[-1] == "</s>" else own]) == [written]
        reference_pieces = scored["reference_pieces"]
        parts = next((j for j, (a, b) in enumerate(zip(own, reference_pieces, strict=False)) if a != b), None)
        if parts is None and len(own) != len(reference_pieces):
            parts = min(len(own), len(reference_pieces))
        assert scored["first_divergence"] == parts
        assert parts is not None or written == reference  # (equal text may still part in pieces)
        divergences.add(parts)
    assert divergences - {None}, "the sample should hold a translation that leaves the reference"


def test_runs_lists_each_run_with_its_configuration_and_curves(server: Server, trained_run: Path) -> None:
    from seqcli import checkpoint
    from seqcli.config import config_to_dict

    (run,) = server.client.get("/runs").json()["runs"]
    assert run["name"] == trained_run.name and run["attention"] is True
    assert run["config"] == json_round_trip(config_to_dict(checkpoint.load_config(trained_run)))
    logged = [r for r in checkpoint.read_log(trained_run) if "step" in r]
    assert [c["step"] for c in run["curves"]] == [r["step"] for r in logged]
    assert [c["valid_bleu"] for c in run["curves"]] == [r["valid_bleu"] for r in logged]


def json_round_trip(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value))


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/translate", {"text": ["a"] * 5, "trace": True}, 413, "text: 5 lines; at most 4 with trace"),
        ("/translate", {"text": ["a"], "run": 1}, 422, "run: 1 is not a served run"),
        ("/translate", {"text": ["a"], "run": -1}, 422, "run: Input should be greater than or equal to 0"),
        ("/score", {"source": "a"}, 422, "reference: Field required"),
        ("/score", {"source": "a", "reference": "b\nc"}, 422, "reference: one line per item"),
        ("/score", {"source": "x" * 301, "reference": "b"}, 413, "source: 301 characters; at most 300"),
        ("/score", {"source": "a", "reference": "b", "run": 3}, 422, "run: 3 is not a served run"),
    ],
)
def test_bad_explorer_requests_are_refused_naming_the_field(
    server: Server, path: str, body: dict[str, Any], status: int, message: str
) -> None:
    response = server.client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["detail"].startswith(message), response.text


def test_the_pages_load_nothing_from_elsewhere(server: Server) -> None:
    for path in ("/", "/docs"):
        page = server.client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(s.startswith(("/", "data:")) for s in sources), sources
        for asset in (s for s in sources if s.startswith("/static/")):
            text = server.client.get(asset).text.replace("http://www.w3.org/2000/svg", "")  # a name
            assert "http://" not in text and "https://" not in text and "//" + "cdn" not in text, asset
    assert "/translate" in server.client.get("/openapi.json").json()["paths"]


def test_clients_that_leave_mid_request_cost_one_log_line_each(server: Server) -> None:
    before = server.log.read_text().count("\n")
    for _ in range(50):
        with socket.create_connection(urlsplit(server.url).netloc.split(":")) as half:  # type: ignore[arg-type]
            half.sendall(b'POST /translate HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"text": ["ab')
    deadline = time.monotonic() + 30
    while server.log.read_text().count("disconnected before sending") < 50 and time.monotonic() < deadline:
        time.sleep(0.1)
    new_lines = server.log.read_text().splitlines()[before:]
    assert sum("disconnected before sending all of POST /translate" in line for line in new_lines) == 50
    assert len(new_lines) == 50, new_lines[:5]
    assert server.client.get("/health").json()["status"] == "ok"
