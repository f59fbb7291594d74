"""One prepared check of seqcli on a GPU machine: device tests, a short training run, speed.

    PYTHONPATH=. python3 benchmarks/gpu_check.py --data data/multi30k-copy --out OUT
    benchmarks/gpu_check.sh --device cpu --smoke --out /tmp/check     # the same steps, tiny

Four parts, each recorded in OUT/gpu_check.json (a part that fails records its error and the
others still run), with a log beside it (OUT/gpu_check.log):

  a. tests: `pytest -m cuda tests/test_devices.py`, the tests that take a device (the CPU and
     the GPU), with the counts of passed, failed and skipped tests;
  b. training: configs/multi30k-de-en.toml for --train-minutes through `seqcli train`, then
     test2016 translated greedy and with beam 5 (`seqcli translate`) and scored (`seqcli evaluate`);
  c. training speed: target tokens per second of the recipe's architecture with and without
     input feeding, in float32 and under bfloat16 autocast, through seqcli's Trainer and through
     the same model written as a plain PyTorch loop (`PlainSeq2Seq`), on the same batches;
  d. decoding speed: test2016 sentences per second, greedy and beam 5, with the run of part b.

--data is a folder holding {train,valid,test2016}.{de,en} (default: $SEQCLI_SHARED_DATA/multi30k,
else ../shared/data/multi30k). --smoke swaps in the generated dates task, a tiny model and a
few steps, so that the whole check runs on a CPU in well under a minute.

The project runs from its checkout (`PYTHONPATH=.`); the script says first which of the
packages it uses are missing, and what each one is needed for.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# What each package is needed for: seqcli imports some only where they are used.
PACKAGES = {
    "torch": "everything",
    "sentencepiece": "tokenizers",
    "sacrebleu": "BLEU (training's validation, evaluate)",
    "typer": "the command line",
    "rich": "the command line's progress display",
    "safetensors": "checkpoints (train, translate, the speed parts)",
    "numpy": "safetensors when it writes a checkpoint",
    "matplotlib": "the curves `seqcli train` draws at every evaluation",
    "pytest": "part a, the device tests",
}
RECIPE = ROOT / "configs" / "multi30k-de-en.toml"
# The smoke run's stand-in for the recipe: the same file with a tiny model and a few steps.
SMOKE_SETTINGS = {
    "data.src_lang": "src", "data.tgt_lang": "tgt",
    "tokenizer.vocab_size": 100,
    "model.embedding_size": 16, "model.hidden_size": 32,
    "model.encoder_layers": 1, "model.decoder_layers": 1,
    "train.batch_tokens": 400, "train.max_steps": 6, "train.eval_every": 6, "train.keep_checkpoints": 0,
}  # fmt: skip
SMOKE_TESTS = "beam_size_one or (real_positions and general)"  # pytest -k: a quick subset


class Log:
    """Lines to stderr and OUT/gpu_check.log, each with the time."""

    def __init__(self, path: Path):
        self.path = path
        path.write_text("", encoding="utf-8")

    def __call__(self, message: str) -> None:
        line = f"[{datetime.now():%H:%M:%S}] {message}"
        print(line, file=sys.stderr, flush=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def command(self, command: list[str], timeout: float, stdout: Path | None = None) -> str:
        """Run a command from the checkout; its stderr's tail goes to the log. Returns stdout."""
        self(" ".join(command) + (f" > {stdout}" if stdout else ""))
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        # Progress bars and SentencePiece's trainer write many lines; the tail says what happened.
        lines = [x for x in (result.stderr + result.stdout).splitlines() if not x.startswith(("I0000", "  "))]
        for line in lines[-25:]:
            self(f"    {line[:300]}")
        if result.returncode != 0:
            raise RuntimeError(f"{command[2:4]} exited with {result.returncode}: {lines[-1:] or ''}")
        if stdout is not None:
            stdout.write_text(result.stdout, encoding="utf-8")
        return result.stdout


def missing_packages() -> dict[str, str]:
    return {name: use for name, use in PACKAGES.items() if importlib.util.find_spec(name) is None}


if "torch" in missing_packages():
    sys.exit("gpu_check: missing import torch, which every part needs")

# seqcli and benchmarks/speed.py are imported in the parts that use them, so that a missing
# package (safetensors, say) fails those parts with its name and the others still run.
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from shared_data import shared_data  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402


def part(results: dict[str, Any], name: str, log: Log, work: Callable[[], dict[str, Any]]) -> None:
    """Run one part of the check; record its figures, or its error, and its seconds."""
    log(f"== {name}")
    start = time.perf_counter()
    try:
        results[name] = work()
    except Exception as error:  # a failed part must not hide the others' figures
        log(f"{name} failed: {type(error).__name__}: {error}")
        results[name] = {"error": f"{type(error).__name__}: {error}"}
    results[name]["seconds"] = round(time.perf_counter() - start, 3)
    log(f"{name}: {json.dumps(results[name])}")


# --- a. the device tests ---------------------------------------------------------------------


def run_device_tests(log: Log, smoke: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
               "tests/test_devices.py"]  # fmt: skip
    if smoke:
        command += ["-k", SMOKE_TESTS]
    log(" ".join(command))
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [x for x in result.stdout.splitlines() if x.strip()]
    for line in lines[-40:]:
        log(f"    {line[:300]}")
    counts = {word: 0 for word in ("passed", "failed", "skipped", "xfailed", "xpassed", "errors")}
    summary = lines[-1] if lines else ""
    for number, word in re.findall(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?)", summary):
        counts["errors" if word.startswith("error") else word] = int(number)
    if sum(counts.values()) == 0:
        raise RuntimeError(f"pytest ran no tests (exit {result.returncode}): {result.stderr.strip()[-500:]}")
    return {**counts, "exit_code": result.returncode, "summary": summary}


# --- b. a short training run and its BLEU ----------------------------------------------------


class Corpus:
    """Where the corpus of the training run is: PREFIX.SRC_LANG / PREFIX.TGT_LANG files."""

    def __init__(self, folder: Path, src_lang: str, tgt_lang: str, test: str):
        self.folder, self.src_lang, self.tgt_lang, self.test_name = folder, src_lang, tgt_lang, test

    def prefix(self, split: str) -> str:
        return str(self.folder / split)

    @property
    def test(self) -> str:
        return self.prefix(self.test_name)


def prepare_corpus(args: argparse.Namespace, log: Log, work: Path) -> Corpus:
    if args.smoke:  # the generated dates task, written by the CLI as a user would
        log.command([sys.executable, "-m", "seqcli", "data", "toy", "--out", str(work / "dates"),
                     "--train", "1500", "--valid", "30", "--test", "40"], timeout=120)  # fmt: skip
        return Corpus(work / "dates", "src", "tgt", "test")
    folder = Path(args.data)
    needed = [folder / f"{split}.{lang}" for split in ("train", "valid", "test2016") for lang in ("de", "en")]
    absent = [str(p) for p in needed if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"--data {folder}: missing {', '.join(absent)}")
    return Corpus(folder, "de", "en", "test2016")


def train_and_score(args: argparse.Namespace, log: Log, corpus: Corpus, run_dir: Path) -> dict[str, Any]:
    settings: dict[str, object] = {
        **(SMOKE_SETTINGS if args.smoke else {}),
        "data.train": corpus.prefix("train"),
        "data.valid": corpus.prefix("valid"),
        "train.max_minutes": args.train_minutes,
    }
    sets = [item for key, value in settings.items() for item in ("--set", f"{key}={value}")]
    seqcli = [sys.executable, "-m", "seqcli"]
    train = [*seqcli, "train", "--config", str(RECIPE), *sets, "--device", args.device, "--out", str(run_dir)]
    log.command(train, timeout=args.train_minutes * 60 + 600)
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    results: dict[str, Any] = {
        "steps": records[-1]["step"],
        "valid_bleu": records[-1]["valid_bleu"],
        "best_valid_bleu": max(r["valid_bleu"] for r in records),
        "train_loss": records[-1]["train_loss"],
        "target_tokens_per_second": records[-1]["target_tokens_per_second"],
    }
    for beam in (1, 5):
        name = "greedy" if beam == 1 else f"beam{beam}"
        hypotheses = run_dir / f"test.{name}"
        log.command([*seqcli, "translate", str(run_dir), "--input", f"{corpus.test}.{corpus.src_lang}",
                     "--output", str(hypotheses), "--beam-size", str(beam), "--device", args.device,
                     "--timings"], timeout=600)  # fmt: skip
        scores = json.loads(
            log.command(
                [*seqcli, "evaluate", "--ref", f"{corpus.test}.{corpus.tgt_lang}", str(hypotheses), "--json"],
                timeout=120,
            )  # fmt: skip
        )
        results[f"test_bleu_{name}"] = scores["bleu"]
        results[f"test_chrf_{name}"] = scores["chrf"]
    return results


# --- c. training speed: seqcli and a plain PyTorch loop ----------------------------------------


class PlainSeq2Seq(nn.Module):
    """The recipe's model as one would write it directly in PyTorch: a bidirectional nn.LSTM
    encoder, a bridge, an nn.LSTM decoder with Luong's general attention and (optionally)
    input feeding, which steps through the target one token at a time; without input feeding
    the decoder LSTM runs over the whole target at once and attention follows for all steps.

    Shapes: B batch, S source length, T target length, E embedding, H hidden, V vocabulary.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, embedding: int, hidden: int, layers: int,
                 dropout: float, input_feeding: bool):  # fmt: skip
        super().__init__()
        self.layers, self.hidden, self.input_feeding = layers, hidden, input_feeding
        self.src_embedding = nn.Embedding(src_vocab, embedding, padding_idx=0)
        self.tgt_embedding = nn.Embedding(tgt_vocab, embedding, padding_idx=0)
        between = dropout if layers > 1 else 0.0  # nn.LSTM's dropout acts between its layers only
        self.encoder = nn.LSTM(embedding, hidden // 2, layers, batch_first=True, bidirectional=True,
                               dropout=between)  # fmt: skip
        self.bridge = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(2)])  # for h and c
        feed = hidden if input_feeding else 0
        self.decoder = nn.LSTM(embedding + feed, hidden, layers, batch_first=True, dropout=between)
        self.attention = nn.Linear(hidden, hidden, bias=False)  # score(h, m) = h . W m
        self.combine = nn.Linear(2 * hidden, hidden, bias=False)
        self.output = nn.Linear(hidden, tgt_vocab)
        self.dropout = nn.Dropout(dropout)

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """-> memory (B, S, H), mask (B, 1, S) true at real positions, the decoder's start state."""
        packed = pack_padded_sequence(self.src_embedding(src), src_lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)  # fmt: skip
        outputs, finals = self.encoder(packed)
        memory, _ = pad_packed_sequence(outputs, batch_first=True, total_length=src.shape[1])  # (B, S, H)
        batch = src.shape[0]
        start = []
        for final, bridge in zip(finals, self.bridge, strict=True):  # (2L, B, H/2) each
            both = final.view(self.layers, 2, batch, self.hidden // 2).transpose(1, 2)
            start.append(torch.tanh(bridge(both.reshape(self.layers, batch, self.hidden))))  # (L, B, H)
        mask = (torch.arange(src.shape[1], device=src.device) < src_lengths[:, None]).unsqueeze(1)
        return self.dropout(memory), mask, (start[0].contiguous(), start[1].contiguous())

    def attend(self, queries: Tensor, keys: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        """queries (B, T, H), keys = W memory (B, S, H) -> attentional vectors (B, T, H)."""
        scores = (queries @ keys.transpose(1, 2)).masked_fill(~mask, -math.inf)  # (B, T, S)
        context = scores.softmax(dim=-1) @ memory  # (B, T, H)
        return torch.tanh(self.combine(torch.cat((queries, context), dim=-1)))

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """-> logits (B, T, V)."""
        memory, mask, state = self.encode(src, src_lengths)
        keys = self.attention(memory)  # (B, S, H), once for all steps
        embedded = self.tgt_embedding(tgt_in)  # (B, T, E)
        if not self.input_feeding:
            outputs, _ = self.decoder(embedded, state)  # (B, T, H)
            attentional = self.attend(outputs, keys, memory, mask)
        else:
            fed = embedded.new_zeros(embedded.shape[0], 1, self.hidden)  # (B, 1, H)
            steps = []
            for t in range(embedded.shape[1]):
                output, state = self.decoder(torch.cat((embedded[:, t : t + 1], fed), dim=-1), state)
                fed = self.attend(output, keys, memory, mask)  # (B, 1, H)
                steps.append(fed)
                fed = self.dropout(fed)
            attentional = torch.cat(steps, dim=1)  # (B, T, H)
        return self.output(self.dropout(attentional))


def encoded_training_corpus(run_dir: Path, corpus: Corpus) -> Any:
    """The training pairs as the run's tokenizers encode them (seqcli.corpus.EncodedCorpus)."""
    from seqcli import checkpoint
    from seqcli.corpus import encode_parallel, read_parallel

    config = checkpoint.load_config(run_dir)
    src_tokenizer, tgt_tokenizer = checkpoint.load_tokenizers(run_dir)
    return encode_parallel(*read_parallel(corpus.prefix("train"), corpus.src_lang, corpus.tgt_lang),
                           src_tokenizer, tgt_tokenizer, config.data.max_tokens_per_sentence)  # fmt: skip


def measure_plain(args: argparse.Namespace, run_dir: Path, data: Any, input_feeding: bool,
                  bf16: bool) -> dict[str, float]:  # fmt: skip
    """Target tokens per second of PlainSeq2Seq, trained as the recipe trains (Adam, label
    smoothing, clipping), on the batches benchmarks/speed.py times seqcli on."""
    from benchmarks.speed import sync
    from seqcli import checkpoint
    from seqcli.corpus import bucket_batches, collate

    device = torch.device(args.device)
    config = checkpoint.load_config(run_dir)
    src_tokenizer, tgt_tokenizer = checkpoint.load_tokenizers(run_dir)
    m = config.model
    torch.manual_seed(1)
    model = PlainSeq2Seq(src_tokenizer.vocab_size, tgt_tokenizer.vocab_size, m.embedding_size, m.hidden_size,
                         m.encoder_layers, m.dropout, input_feeding).to(device)  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.learning_rate)
    batches = bucket_batches(data.examples, config.train.batch_tokens, seed=1)

    def step(indices: list[int]) -> int:
        batch = collate([data.examples[i] for i in indices]).to(device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(batch.src, batch.src_lengths, batch.tgt_in)  # (B, T, V)
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch.tgt_out.flatten(), ignore_index=0,
                               label_smoothing=config.train.label_smoothing, reduction="sum")  # fmt: skip
        (loss / batch.n_tgt_tokens).backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.train.clip_norm)
        optimizer.step()
        return batch.n_tgt_tokens

    for indices in batches[: args.warmup_steps]:
        step(indices)
    sync(device)
    timed = batches[args.warmup_steps : args.warmup_steps + args.train_steps]
    start = time.perf_counter()
    tokens = sum(step(indices) for indices in timed)
    sync(device)
    seconds = time.perf_counter() - start
    return {"train_steps": len(timed), "train_target_tokens_per_second": round(tokens / seconds, 1),
            "parameters": sum(p.numel() for p in model.parameters())}  # fmt: skip


def variant_run(run_dir: Path, folder: Path, input_feeding: bool, bf16: bool) -> Path:
    """A copy of the run whose stored config has these settings: benchmarks/speed.py builds
    its Trainer from a run directory."""
    from seqcli import checkpoint

    config = checkpoint.load_config(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (checkpoint.SRC_SPM, checkpoint.TGT_SPM, checkpoint.BEST):
        shutil.copyfile(run_dir / name, folder / name)
    model = replace(config.model, input_feeding=input_feeding)
    checkpoint.save_config(folder, replace(config, model=model, train=replace(config.train, bf16=bf16)))
    return folder


def measure_training_speed(
    args: argparse.Namespace, log: Log, corpus: Corpus, run_dir: Path
) -> dict[str, Any]:
    from benchmarks.speed import measure_training
    from seqcli.device import has_native_bf16

    results: dict[str, Any] = {}
    data = encoded_training_corpus(run_dir, corpus)
    precisions = ["fp32"] + (["bf16"] if has_native_bf16(torch.device(args.device)) else [])
    if "bf16" not in precisions:
        results["bf16"] = f"skipped: {args.device} has no bfloat16 matrix units"
    for input_feeding in (True, False):
        for precision in precisions:
            name = f"{'input_feeding' if input_feeding else 'no_input_feeding'}_{precision}"
            bf16 = precision == "bf16"
            variant = variant_run(run_dir, run_dir.parent / f"speed-{name}", input_feeding, bf16)
            speed_args = argparse.Namespace(run_dir=variant, train=corpus.prefix("train"),
                                            test=corpus.prefix("valid"), src_lang=corpus.src_lang,
                                            tgt_lang=corpus.tgt_lang, warmup_steps=args.warmup_steps,
                                            train_steps=args.train_steps)  # fmt: skip
            ours = measure_training(speed_args, torch.device(args.device))
            plain = measure_plain(args, run_dir, data, input_feeding, bf16)
            results[name] = {
                "seqcli_target_tokens_per_second": ours["train_target_tokens_per_second"],
                "plain_pytorch_target_tokens_per_second": plain["train_target_tokens_per_second"],
                "seqcli_parameters": ours["parameters"],
                "plain_pytorch_parameters": plain["parameters"],
                "steps": ours["train_steps"],
            }
            log(f"{name}: {json.dumps(results[name])}")
    return results


# --- d. decoding speed -----------------------------------------------------------------------


def measure_decoding_speed(args: argparse.Namespace, corpus: Corpus, run_dir: Path) -> dict[str, Any]:
    from benchmarks.speed import measure_decoding

    speed_args = argparse.Namespace(run_dir=run_dir, test=corpus.test, src_lang=corpus.src_lang,
                                    tgt_lang=corpus.tgt_lang, decode_lines=args.decode_lines)  # fmt: skip
    return measure_decoding(speed_args, torch.device(args.device))


def given(corpus: Corpus | Exception) -> Corpus:
    if isinstance(corpus, Exception):
        raise corpus
    return corpus


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", default=str(shared_data("multi30k")), help="Folder with {train,valid,test2016}.{de,en}."
    )
    parser.add_argument(
        "--out", default=os.environ.get("OUT", ""), help="Folder for the JSON and log ($OUT)."
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--smoke", action="store_true", help="Tiny settings on the dates task (a CPU minute)."
    )
    parser.add_argument("--skip-tests", action="store_true", help="Leave part a out.")
    parser.add_argument("--train-minutes", type=float, help="Part b's training time (default 5; smoke 0.3).")
    parser.add_argument(
        "--train-steps", type=int, help="Timed updates per speed figure (default 30; smoke 3)."
    )
    parser.add_argument("--warmup-steps", type=int, help="Untimed updates first (default 5; smoke 1).")
    parser.add_argument("--decode-lines", type=int, help="test2016 lines decoded in part d (default all).")
    args = parser.parse_args()
    if not args.out:
        parser.error("--out: give a folder (or set $OUT)")
    small = args.smoke
    for name, full, smoke in (("train_minutes", 5.0, 0.3), ("train_steps", 30, 3), ("warmup_steps", 5, 1),
                              ("decode_lines", 10**6, 20)):  # fmt: skip
        if getattr(args, name) is None:
            setattr(args, name, smoke if small else full)
    return args


def main() -> None:
    args = parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "gpu_check.log")
    missing = missing_packages()
    for name, use in missing.items():
        log(f"MISSING import {name}: needed for {use}")
    log("all imports present" if not missing else f"missing imports: {', '.join(missing)}")
    from benchmarks.provenance import provenance, write_result
    from benchmarks.speed import machine_info

    started = provenance()
    device = torch.device(args.device)
    results: dict[str, Any] = {
        "started": datetime.now().isoformat(timespec="seconds"),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "missing_imports": missing,
        "machine": machine_info(device) if device.type == "cpu" or torch.cuda.is_available() else {},
    }
    work = out / "work"
    run_dir = work / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if not args.skip_tests:
        part(results, "tests", log, lambda: run_device_tests(log, args.smoke))
    corpus: Corpus | Exception
    try:
        corpus = prepare_corpus(args, log, work)
    except Exception as error:  # parts b to d need it; each records why it did not run
        log(f"no corpus: {error}")
        corpus = error
    part(results, "training", log, lambda: train_and_score(args, log, given(corpus), run_dir))
    part(results, "decoding_speed", log, lambda: measure_decoding_speed(args, given(corpus), run_dir))
    part(results, "training_speed", log, lambda: measure_training_speed(args, log, given(corpus), run_dir))
    results["finished"] = datetime.now().isoformat(timespec="seconds")
    write_result(out / "gpu_check.json", results, started)
    for hypotheses in run_dir.glob("test.*"):  # the translations of part b, for a look
        shutil.copyfile(hypotheses, out / hypotheses.name)
    shutil.rmtree(work, ignore_errors=True)  # checkpoints: too large to bring back
    log(f"wrote {out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
