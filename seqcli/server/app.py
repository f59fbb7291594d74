"""The HTTP API over a Translator: POST /translate and /score, GET /health, /info and /runs,
with limits; the explorer page at / and the API's documentation at /docs, both served offline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails
from starlette.requests import ClientDisconnect

from seqcli import __version__, checkpoint
from seqcli.alignment import best_attention, pharaoh
from seqcli.config import DecodeConfig, config_to_dict
from seqcli.ensemble import Ensemble
from seqcli.errors import ConfigError
from seqcli.server.batching import DynamicBatcher
from seqcli.server.explore import reads_attention, score_pair, trace_line
from seqcli.translate import Translator

STATIC = Path(__file__).parent / "static"  # the explorer page and the API docs page


@dataclass(frozen=True)
class Limits:
    """What one request may ask: more lines or characters are refused (413), not cut."""

    max_lines: int = 64
    max_chars: int = 20_000  # all lines together
    max_beam_size: int = 16
    max_trace_lines: int = 4  # a trace holds every step's candidates: a few lines per request

    @property
    def max_body_bytes(self) -> int:
        # JSON may spell one character in 12 bytes (a surrogate pair), plus quotes and commas.
        return 12 * self.max_chars + 8 * self.max_lines + 4096


@dataclass(frozen=True)
class Batching:
    """How long the model waits for more requests to search together, and how many lines at most."""

    max_lines: int = 256
    max_wait_ms: float = 5.0


class TranslateRequest(BaseModel):
    """The body of POST /translate; options left out take the server's defaults."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: list[str]
    beam_size: int | None = Field(None, ge=1)
    n_best: int | None = Field(None, ge=1)
    length_penalty: float | None = Field(None, ge=0.0, le=10.0)
    max_length_ratio: float | None = Field(None, gt=0.0, le=5.0)
    alignments: bool = False
    trace: bool = False
    run: int | None = Field(None, ge=0)


class ScoreRequest(BaseModel):
    """The body of POST /score: a source and its reference translation, one line each."""

    model_config = ConfigDict(extra="forbid", strict=True)

    source: str
    reference: str
    run: int | None = Field(None, ge=0)


@dataclass(frozen=True)
class SearchOptions:
    """What decides how a line is searched; requests with equal options share a batch."""

    decode: DecodeConfig
    alignments: bool
    trace: bool = False
    run: int | None = None  # an index into the served runs; None: the served model


@dataclass(frozen=True)
class ScoreOptions:
    """A reference to score the line against, under one run (None: the served model)."""

    reference: str
    run: int | None = None


@dataclass(frozen=True)
class ServedRun:
    """One run directory served on its own: the explorer's side-by-side views and GET /runs."""

    run_dir: Path
    translator: Translator


Body = TypeVar("Body", bound=BaseModel)


def _validate(kind: type[Body], body: bytes) -> Body:
    try:
        return kind.model_validate_json(body)
    except ValidationError as error:
        raise HTTPException(422, "; ".join(_describe(e) for e in error.errors())) from None


def _check_run(run: int | None, n_runs: int) -> None:
    if run is not None and run >= n_runs:
        raise HTTPException(422, f"run: {run} is not a served run (GET /runs lists 0 to {n_runs - 1})")


def parse_request(
    body: bytes, defaults: DecodeConfig, limits: Limits, refusals: dict[int | None, str | None]
) -> tuple[list[str], SearchOptions]:
    """The lines and search options of a request body; an HTTPException names the field at fault.
    refusals: per served run (None: the served model), why it cannot give alignments, or None."""
    request = _validate(TranslateRequest, body)
    _check_run(request.run, len(refusals) - 1)
    lines = request.text
    if len(lines) > limits.max_lines:
        raise HTTPException(413, f"text: {len(lines)} lines; at most {limits.max_lines} per request")
    n_chars = sum(map(len, lines))
    if n_chars > limits.max_chars:
        raise HTTPException(413, f"text: {n_chars} characters; at most {limits.max_chars} per request")
    if request.trace and len(lines) > limits.max_trace_lines:
        raise HTTPException(413, f"text: {len(lines)} lines; at most {limits.max_trace_lines} with trace")
    for index, line in enumerate(lines):
        _check_line(line, f"text[{index}]")
    given = request.model_dump(exclude={"text", "alignments", "trace", "run"}, exclude_none=True)
    try:
        decode = replace(defaults, **given)
    except ConfigError as error:
        raise HTTPException(422, str(error).removeprefix("decode.")) from None
    if decode.beam_size > limits.max_beam_size:
        raise HTTPException(422, f"beam_size: {decode.beam_size} exceeds the maximum {limits.max_beam_size}")
    if request.alignments and (refusal := refusals[request.run]) is not None:
        raise HTTPException(422, f"alignments: {refusal}")
    return lines, SearchOptions(decode, request.alignments, request.trace, request.run)


def _check_line(line: str, where: str) -> None:
    if "\n" in line or "\x00" in line:
        raise HTTPException(422, f"{where}: one line per item, without line breaks or NUL")


def parse_score_request(body: bytes, limits: Limits, n_runs: int) -> tuple[str, ScoreOptions]:
    """The source and scoring options of a POST /score body."""
    request = _validate(ScoreRequest, body)
    _check_run(request.run, n_runs)
    for where, line in (("source", request.source), ("reference", request.reference)):
        _check_line(line, where)
        if len(line) > limits.max_chars:
            raise HTTPException(413, f"{where}: {len(line)} characters; at most {limits.max_chars}")
    return request.source, ScoreOptions(request.reference, request.run)


def _describe(error: ErrorDetails) -> str:
    """One pydantic error as 'field: message', e.g. 'text[2]: Input should be a valid string'."""
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
    return f"{where.removeprefix('.') or 'body'}: {error['msg']}"


def search_lines(translator: Translator, lines: list[str], options: SearchOptions) -> list[dict[str, Any]]:
    """Per line: the best text, the n-best hypotheses with scores and, if asked, an alignment
    or the search's trace."""
    decode = options.decode
    if options.trace:
        return [_traced(translator, line, options) for line in lines]
    src_ids = translator.src_tokenizer.encode(lines)
    results = [hyps[: decode.n_best] for hyps in translator.translate_ids(src_ids, decode)]
    texts = iter(translator.tgt_tokenizer.decode([h.tokens for hyps in results for h in hyps]))
    translations: list[dict[str, Any]] = []
    for hypotheses in results:
        found = [
            {"text": next(texts), "score": h.score, "normalized_score": h.normalized_score}
            for h in hypotheses
        ]
        translations.append({"text": found[0]["text"], "hypotheses": found})
    if options.alignments:
        weights = best_attention(translator, src_ids, [hyps[0].tokens for hyps in results])
        for i, translation in enumerate(translations):  # an empty line aligns nothing
            # The end-of-sentence row aligns nothing either.
            translation["alignment"] = pharaoh(weights[i][:-1]) if i in weights else ""
    return translations


def _traced(translator: Translator, line: str, options: SearchOptions) -> dict[str, Any]:
    """One line searched alone with its trace: the same answer as search_lines, and "trace"."""
    trace = trace_line(translator, line, options.decode)
    hypotheses = trace["hypotheses"] or [{"text": "", "score": 0.0, "normalized_score": 0.0}]
    found = [{key: h[key] for key in ("text", "score", "normalized_score")} for h in hypotheses]
    translation: dict[str, Any] = {"text": found[0]["text"], "hypotheses": found, "trace": trace}
    if options.alignments:
        rows = hypotheses[0].get("attention")
        translation["alignment"] = pharaoh(np.array(rows)[:-1]) if rows else ""
    return translation


def alignment_refusal(translator: Translator) -> str | None:
    """Why this model cannot give alignments, or None when it can."""
    if isinstance(translator.model, Ensemble):
        return "need a single run directory, not an ensemble"
    if not reads_attention(translator):
        return "this run's model has no attention (model.attention none)"
    return None


def describe(
    translator: Translator, run_dirs: list[Path], limits: Limits, batching: Batching
) -> dict[str, Any]:
    """GET /info: what is served, with which defaults and limits."""
    model = translator.model
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    return {
        "seqcli_version": __version__,
        "run_dirs": [str(path) for path in run_dirs],
        "models": [asdict(member.config) for member in members],
        "decode": asdict(translator.decode),
        "tokenizers": {
            "src_sha256": translator.src_tokenizer.sha256,
            "tgt_sha256": translator.tgt_tokenizer.sha256,
        },
        "device": str(translator.device),
        "limits": {**asdict(limits), "max_body_bytes": limits.max_body_bytes},
        "batching": asdict(batching),
    }


def served_runs(translator: Translator, run_dirs: list[Path]) -> list[ServedRun]:
    """Each run of the served model on its own: an ensemble's members, or the one model."""
    if not isinstance(translator.model, Ensemble):
        return [ServedRun(run_dirs[0], translator)]
    tokenizers = (translator.src_tokenizer, translator.tgt_tokenizer)
    return [
        ServedRun(run_dir, Translator(member, *tokenizers, translator.decode, translator.device))  # type: ignore[arg-type]
        for run_dir, member in zip(run_dirs, translator.model.members, strict=True)
    ]


CURVE_FIELDS = ("step", "elapsed_seconds", "train_loss", "valid_loss", "valid_bleu", "valid_exact_match")


def describe_run(index: int, run: ServedRun) -> dict[str, Any]:
    """GET /runs: one run's name, configuration and curves (read from its log.jsonl now, so a
    run still training shows its progress)."""
    log = checkpoint.read_log(run.run_dir)
    return {
        "index": index,
        "name": run.run_dir.name,
        "run_dir": str(run.run_dir),
        "attention": reads_attention(run.translator),
        "config": config_to_dict(checkpoint.load_config(run.run_dir)),
        "curves": [{key: record.get(key) for key in CURVE_FIELDS} for record in log if "step" in record],
    }


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused (413) once it passes max_bytes, before it is all in memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"body: {declared} bytes; at most {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise HTTPException(413, f"body: more than {max_bytes} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise _Disconnected(request) from None
    return b"".join(chunks)


class _Disconnected(Exception):
    """The client went away before its request body was complete: nobody waits for an answer."""

    def __init__(self, request: Request):
        client = request.client
        where = f"{client.host}:{client.port}" if client else "a client"
        super().__init__(f"{where} disconnected before sending all of {request.method} {request.url.path}")


def create_app(
    translator: Translator,
    run_dirs: list[Path],
    limits: Limits,
    batching: Batching,
    before_batch: Callable[[], object] | None = None,
    runs: list[ServedRun] | None = None,
) -> FastAPI:
    """The app; its batcher's worker thread owns the models until the app shuts down.
    before_batch: called by that thread before each batch (the CLI keeps the thread count there).
    runs: the runs served one by one (default: the served model's runs, see served_runs)."""
    runs = runs if runs is not None else served_runs(translator, run_dirs)

    def work(lines: list[str], options: SearchOptions | ScoreOptions) -> list[dict[str, Any]]:
        if before_batch is not None:
            before_batch()
        chosen = translator if options.run is None else runs[options.run].translator
        if isinstance(options, ScoreOptions):
            return [score_pair(chosen, line, options.reference) for line in lines]
        return search_lines(chosen, lines, options)

    batcher: DynamicBatcher[SearchOptions | ScoreOptions, dict[str, Any]] = DynamicBatcher(
        work, batching.max_lines, batching.max_wait_ms / 1000
    )
    info = describe(translator, run_dirs, limits, batching)
    refusals: dict[int | None, str | None] = {None: alignment_refusal(translator)}
    refusals.update((i, alignment_refusal(run.translator)) for i, run in enumerate(runs))
    log = logging.getLogger("uvicorn.error")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()  # uvicorn has finished the requests in flight by now

    # /docs is seqcli's own page: FastAPI's default loads its scripts from a CDN.
    app = FastAPI(title="seqcli", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(_Disconnected)
    async def disconnected(request: Request, error: _Disconnected) -> Response:
        log.warning("seqcli serve: %s", error)  # one line; the response goes nowhere
        return Response(status_code=400)

    def body_schema(model: type[BaseModel]) -> dict[str, Any]:
        content = {"application/json": {"schema": model.model_json_schema()}}
        return {"requestBody": {"content": content, "required": True}}

    @app.post("/translate", openapi_extra=body_schema(TranslateRequest))
    async def translate(request: Request) -> JSONResponse:
        """Translations of text (a list of lines), in order, with scores. trace: true adds each
        line's search step by step (docs/explorer.md); run: one served run alone (GET /runs)."""
        lines, options = parse_request(
            await read_body(request, limits.max_body_bytes), translator.decode, limits, refusals
        )
        translations = await asyncio.wrap_future(batcher.submit(lines, options)) if lines else []
        return JSONResponse({"translations": translations})

    @app.post("/score", openapi_extra=body_schema(ScoreRequest))
    async def score(request: Request) -> JSONResponse:
        """A reference's pieces scored under teacher forcing and beside the model's own free run,
        with the first step where the two part (docs/explorer.md)."""
        source, options = parse_score_request(
            await read_body(request, limits.max_body_bytes), limits, len(runs)
        )
        (scored,) = await asyncio.wrap_future(batcher.submit([source], options))
        return JSONResponse(scored)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Up and serving; with the requests waiting now, and the batches and lines searched so far."""
        return {
            "status": "ok",
            "pending": batcher.pending,
            "batches": batcher.batches,
            "lines": batcher.lines,
        }

    @app.get("/info")
    async def model_info() -> dict[str, Any]:
        """The model configuration, decode defaults, tokenizers' hashes, limits, seqcli version."""
        return info

    @app.get("/runs")
    async def list_runs() -> dict[str, Any]:
        """The served runs, each with its configuration and training curves (from log.jsonl)."""
        return {
            "runs": [describe_run(i, run) for i, run in enumerate(runs)],
            "decode": asdict(translator.decode),
        }

    @app.get("/", include_in_schema=False)
    async def explorer() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
