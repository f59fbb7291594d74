"""The HTTP API over a Translator: POST /translate, GET /health and GET /info, with limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from seqcli import __version__
from seqcli.alignment import best_attention, pharaoh
from seqcli.config import DecodeConfig
from seqcli.ensemble import Ensemble
from seqcli.errors import ConfigError
from seqcli.server.batching import DynamicBatcher
from seqcli.translate import Translator


@dataclass(frozen=True)
class Limits:
    """What one request may ask: more lines or characters are refused (413), not cut."""

    max_lines: int = 64
    max_chars: int = 20_000  # all lines together
    max_beam_size: int = 16

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


@dataclass(frozen=True)
class SearchOptions:
    """What decides how a line is searched; requests with equal options share a batch."""

    decode: DecodeConfig
    alignments: bool


def parse_request(
    body: bytes, defaults: DecodeConfig, limits: Limits, alignment_refusal: str | None
) -> tuple[list[str], SearchOptions]:
    """The lines and search options of a request body; an HTTPException names the field at fault."""
    try:
        request = TranslateRequest.model_validate_json(body)
    except ValidationError as error:
        raise HTTPException(422, "; ".join(_describe(e) for e in error.errors())) from None
    lines = request.text
    if len(lines) > limits.max_lines:
        raise HTTPException(413, f"text: {len(lines)} lines; at most {limits.max_lines} per request")
    n_chars = sum(map(len, lines))
    if n_chars > limits.max_chars:
        raise HTTPException(413, f"text: {n_chars} characters; at most {limits.max_chars} per request")
    for index, line in enumerate(lines):
        if "\n" in line or "\x00" in line:
            raise HTTPException(422, f"text[{index}]: one line per item, without line breaks or NUL")
    given = request.model_dump(exclude={"text", "alignments"}, exclude_none=True)
    try:
        decode = replace(defaults, **given)
    except ConfigError as error:
        raise HTTPException(422, str(error).removeprefix("decode.")) from None
    if decode.beam_size > limits.max_beam_size:
        raise HTTPException(422, f"beam_size: {decode.beam_size} exceeds the maximum {limits.max_beam_size}")
    if request.alignments and alignment_refusal is not None:
        raise HTTPException(422, f"alignments: {alignment_refusal}")
    return lines, SearchOptions(decode, request.alignments)


def _describe(error: ErrorDetails) -> str:
    """One pydantic error as 'field: message', e.g. 'text[2]: Input should be a valid string'."""
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
    return f"{where.removeprefix('.') or 'body'}: {error['msg']}"


def search_lines(translator: Translator, lines: list[str], options: SearchOptions) -> list[dict[str, Any]]:
    """Per line: the best text, the n-best hypotheses with scores and, if asked, an alignment."""
    decode = options.decode
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


def alignment_refusal(translator: Translator) -> str | None:
    """Why this model cannot give alignments, or None when it can."""
    if isinstance(translator.model, Ensemble):
        return "need a single run directory, not an ensemble"
    if not translator.model.decoder.attention.reads_query:
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


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused (413) once it passes max_bytes, before it is all in memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"body: {declared} bytes; at most {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(413, f"body: more than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    translator: Translator,
    run_dirs: list[Path],
    limits: Limits,
    batching: Batching,
    before_batch: Callable[[], object] | None = None,
) -> FastAPI:
    """The app; its batcher's worker thread owns the model until the app shuts down.
    before_batch: called by that thread before each batch (the CLI keeps the thread count there)."""

    def search(lines: list[str], options: SearchOptions) -> list[dict[str, Any]]:
        if before_batch is not None:
            before_batch()
        return search_lines(translator, lines, options)

    batcher: DynamicBatcher[SearchOptions, dict[str, Any]] = DynamicBatcher(
        search, batching.max_lines, batching.max_wait_ms / 1000
    )
    info = describe(translator, run_dirs, limits, batching)
    refusal = alignment_refusal(translator)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()  # uvicorn has finished the requests in flight by now

    app = FastAPI(title="seqcli", version=__version__, lifespan=lifespan)
    schema = {"content": {"application/json": {"schema": TranslateRequest.model_json_schema()}}}

    @app.post("/translate", openapi_extra={"requestBody": {**schema, "required": True}})
    async def translate(request: Request) -> JSONResponse:
        """Translations of text (a list of lines), in order, with scores."""
        lines, options = parse_request(
            await read_body(request, limits.max_body_bytes), translator.decode, limits, refusal
        )
        translations = await asyncio.wrap_future(batcher.submit(lines, options)) if lines else []
        return JSONResponse({"translations": translations})

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

    return app
