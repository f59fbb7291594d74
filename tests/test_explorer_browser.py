"""The explorer page in a real browser: headless Chromium driven by Playwright, against a real
`seqcli serve` of two small runs side by side (attention, and none)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import run_cli
from conftest import TINY_TRAIN_ARGS
from test_serve import Server, cli_translate

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium on PATH (Debian: apt-get install chromium)", allow_module_level=True)

# Where the README's screenshot is written, when asked: SEQCLI_SCREENSHOT=docs/figures/explorer.png
SCREENSHOT = os.environ.get("SEQCLI_SCREENSHOT")


@pytest.fixture(scope="module")
def plain_run(toy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run without attention, trained briefly: the second column of the side-by-side view."""
    run_dir = tmp_path_factory.mktemp("runs") / "no-attention"
    run_cli(
        "train", "--train", str(toy_dir / "train"), "--valid", str(toy_dir / "valid"),
        *TINY_TRAIN_ARGS, "--attention", "none", "--max-steps", "60", "--eval-every", "30",
        "--out", str(run_dir),
    )  # fmt: skip
    return run_dir


@pytest.fixture(scope="module")
def server(trained_run: Path, plain_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("explorer") / "stderr.log"
    running = Server([str(trained_run), str(plain_run), "--side-by-side"], log)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    """A fresh page on the explorer; at the end, no console error and no request elsewhere."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    requested: list[str] = []
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("request", lambda request: requested.append(request.url))
    opened.goto(server.url + "/")
    opened.wait_for_function("document.getElementById('run').options.length > 0")
    yield opened
    context.close()
    assert errors == []
    assert requested and all(url.startswith(server.url + "/") for url in requested), requested


def api_trace(server: Server, line: str, **options: Any) -> dict[str, Any]:
    (translation,) = server.translate({"text": [line], "trace": True, "run": 0, **options})
    return translation["trace"]


def wait_for_trace(page: Any, line: int) -> None:
    """Wait until line is the chosen one and its search trace has arrived (no view is busy)."""
    page.wait_for_function(
        f"document.querySelector('#outputs li.chosen')?.dataset.line === '{line}'"
        " && document.querySelectorAll('[aria-busy]').length === 0"
    )


def tab_to(page: Any, element_id: str) -> None:
    """Move the keyboard focus with Tab until it reaches element_id."""
    for _ in range(40):
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id}")


def test_translate_attention_and_beam_search_from_the_keyboard(
    page: Any, server: Server, trained_run: Path, toy_dir: Path
) -> None:
    lines = (toy_dir / "test.src").read_text().splitlines()[:3]
    tab_to(page, "source")
    page.keyboard.type("\n".join(lines))
    tab_to(page, "beam-size")
    page.keyboard.press("Control+A")
    page.keyboard.type("3")
    tab_to(page, "source")
    page.keyboard.press("Control+Enter")
    wait_for_trace(page, 0)
    shown = page.locator("#outputs .translation").all_inner_texts()
    assert shown == cli_translate([trained_run], lines, "--beam-size", "3", "--length-penalty", "1")

    # The second line, chosen from the keyboard: its attention and its search.
    page.focus("#outputs li[data-line='1']")
    page.keyboard.press("Enter")
    wait_for_trace(page, 1)
    trace = api_trace(server, lines[1], beam_size=3, length_penalty=1.0)
    page.focus("#tab-attention")
    page.keyboard.press("Enter")
    assert page.locator("#view-attention").is_visible()
    best = trace["hypotheses"][0]
    cells = page.locator("#heatmap .cell")
    assert cells.count() == len(trace["source_pieces"]) * (len(best["pieces"]) + 1)
    cells.first.focus()
    assert "looked at" in page.inner_text("#attention-readout")
    assert page.locator("#heatmap .lit").count() == 2  # its target and source pieces

    page.focus("#tab-beam")
    page.keyboard.press("Enter")
    steps = trace["steps"]
    for t, nodes in enumerate(steps, start=1):
        shown_nodes = page.locator(f"#tree g.node[data-step='{t}']")
        assert shown_nodes.count() == len(nodes)
        for status in ("kept", "finished", "pruned"):
            expected = sum(n["status"] == status for n in nodes)
            assert page.locator(f"#tree g.node.{status}[data-step='{t}']").count() == expected
    assert page.inner_text("#stop-reason").endswith(trace["stop_reason"] + ".")
    page.focus("#step")
    page.keyboard.press("Home")  # the slider back to step 1: only the first step's nodes remain
    assert page.locator("#tree g.node").count() == len(steps[0])
    first = page.locator("#finished tbody tr").first.locator("td").nth(1).inner_text()
    assert first.replace(" ", "").replace("</s>", "") == "".join(best["pieces"])
    # Another length penalty re-ranks the finished hypotheses in place, without a request.
    finished = [
        (n["score"], t) for t, nodes in enumerate(steps, start=1) for n in nodes if n["status"] != "kept"
        and n["status"] != "pruned"
    ]  # fmt: skip
    page.fill("#rerank-alpha", "0")
    scores = [float(x) for x in page.locator("#finished tbody td:nth-child(5)").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(max(score for score, _ in finished), abs=1e-3)
    if SCREENSHOT:
        page.focus("#tab-attention")
        page.keyboard.press("Enter")
        page.screenshot(path=SCREENSHOT, clip={"x": 0, "y": 0, "width": 1200, "height": 700})


def test_exposure_bias_side_by_side_and_curves(
    page: Any, server: Server, trained_run: Path, plain_run: Path, toy_dir: Path
) -> None:
    sources = (toy_dir / "test.src").read_text().splitlines()[:20]
    references = (toy_dir / "test.tgt").read_text().splitlines()[:20]
    for source, reference in zip(sources, references, strict=True):
        scored = server.client.post("/score", json={"source": source, "reference": reference}).json()
        if scored["first_divergence"] is not None:
            break
    else:
        pytest.fail("no line of the sample leaves its reference")
    page.click("#tab-exposure")
    page.fill("#exposure-source", source)
    page.fill("#exposure-reference", reference)
    page.keyboard.press("Enter")
    page.wait_for_selector("#exposure tr.diverge")
    assert page.locator("#exposure tr.diverge").get_attribute("data-step") == str(
        scored["first_divergence"] + 1
    )
    assert page.locator("#exposure tbody tr").count() == max(
        len(scored["teacher_forced"]), len(scored["free_running"])
    )

    page.click("#tab-translate")
    page.fill("#source", "\n".join(sources[:4]))
    page.click("#tab-compare")
    page.click("#compare")
    page.wait_for_selector("#comparison tbody tr")
    rows = page.locator("#comparison tbody tr")
    columns = [[rows.nth(i).locator("td").nth(c).inner_text() for i in range(4)] for c in (1, 2)]
    options = (
        "--beam-size",
        page.input_value("#beam-size"),
        "--length-penalty",
        page.input_value("#length-penalty"),
    )
    assert columns == [cli_translate([run], sources[:4], *options) for run in (trained_run, plain_run)]
    assert "attention none" in page.inner_text("#comparison thead")

    page.click("#tab-curves")
    assert page.locator("#curves polyline").count() == 3 * 2  # three charts, two runs


def test_the_attention_view_says_when_a_model_has_none(page: Any) -> None:
    page.select_option("#run", "1")
    page.fill("#source", "1 May 2003")
    page.click("#translate")
    wait_for_trace(page, 0)
    page.click("#tab-attention")
    assert "no attention" in page.inner_text("#attention-note")
    assert page.locator("#heatmap .cell").count() == 0


def test_the_api_docs_render_offline(browser: Any, server: Server) -> None:
    docs = browser.new_page()
    requested: list[str] = []
    docs.on("request", lambda request: requested.append(request.url))
    docs.goto(server.url + "/docs")
    docs.wait_for_selector("h2")
    headings = docs.locator("h2").all_inner_texts()
    assert {"POST /translate", "POST /score", "GET /runs"} <= set(headings)
    assert all(url.startswith(server.url + "/") for url in requested), requested
    docs.close()
