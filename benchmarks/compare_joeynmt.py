"""seqcli beside JoeyNMT 2.3.0: same data, architecture, batches and steps, on this machine.

    python benchmarks/compare_joeynmt.py --data ../shared/data/multi30k --steps 300

Multi30k German->English (train/valid/test2016 as PREFIX.de / PREFIX.en under --data), one
joint 8000-piece unigram SentencePiece model used by both toolkits, and JoeyNMT's reference
RNN: 2-layer bidirectional LSTM encoder (256 per direction), 2-layer LSTM decoder (512) with
Luong attention, input feeding and a bridge, embeddings 256, dropout 0.3 (embeddings too),
Adam 0.001 at a constant rate, gradient norm clipped at 1, no label smoothing, Xavier RNN
weights and JoeyNMT's dropout places (seqcli's `rnn_init = "xavier"`, `dropout_placement =
"input"`), batches of 4096 tokens. Both toolkits fill a batch with pairs in random order;
JoeyNMT counts a pair's padded tokens, seqcli its real ones (max(source, target + 1)), since
padding costs it no work, so the same budget holds about twice as many real target tokens
(both are reported; a variant with batches of JoeyNMT's real size is trained too, and one
with seqcli's length buckets).

What is measured, alternating the toolkits (JoeyNMT first, or --seqcli-first):
  * training: --steps updates of each; target tokens per second (real tokens, padding
    excluded) as each toolkit logs it, over its training time (not validation);
  * decoding test2016 with greedy and beam 5 (batches of 100 sentences, output at most
    1.5 x the source length, GNMT length penalty 1.0): sentences per second counting the
    search only (as each toolkit reports it: JoeyNMT's "Generation took", seqcli's
    `translate --timings`) and the whole command from start to last line;
  * quality after the same steps: greedy BLEU on valid (model selection data), and BLEU of
    every test2016 output, all with sacreBLEU (13a, cased);
  * on a CPU also seqcli --quantize (int8) with beam 5.

JoeyNMT is installed from PyPI into its own virtual environment (--joeynmt-venv) with the
workarounds torch 2.13 needs: torch first, `importlib_metadata`, `sentencepiece==0.2.1`, and a
constant learning rate written as `scheduling: exponential` with factor 1.0 (its plateau
scheduler fails on torch 2.13). Figures go to --out (JSON) and a markdown table beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from provenance import cpu_model, provenance, write_result  # noqa: E402
from shared_data import shared_data  # noqa: E402

from seqcli.config import config_from_dict, config_to_dict, dumps_toml, load_toml, merge  # noqa: E402
from seqcli.corpus import read_parallel  # noqa: E402
from seqcli.metrics import score  # noqa: E402
from seqcli.textio import write_text_atomic  # noqa: E402
from seqcli.tokenizer import Tokenizer  # noqa: E402

JOEYNMT_PACKAGES = ["joeynmt==2.3.0", "importlib_metadata", "sentencepiece==0.2.1"]
SPECIAL_PIECES = 4  # seqcli's models start with <pad> <unk> <s> </s>; JoeyNMT adds its own


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def run(command: list[str], *, stdin: Path | None = None, stdout: Path | None = None, log_to: Path) -> float:
    """Run a command to completion; stderr (and stdout unless redirected) go to log_to.

    Returns the wall-clock seconds. A failure stops the benchmark, pointing at the log."""
    log(" ".join(command) + (f" < {stdin}" if stdin else "") + (f" > {stdout}" if stdout else ""))
    start = time.perf_counter()
    with (
        open(log_to, "w", encoding="utf-8") as err,
        open(stdin or os.devnull, "rb") as inp,
        open(stdout or os.devnull, "wb") as out,
    ):
        result = subprocess.run(command, stdin=inp, stdout=out if stdout else err, stderr=err)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"compare_joeynmt: {command[0]} failed ({result.returncode}); see {log_to}")
    return seconds


# ---------------------------------------------------------------------------------------------
# Setting up


def joeynmt_python(venv: Path, torch_version: str) -> Path:
    """The venv's interpreter, installing JoeyNMT there first if it is not importable."""
    python = venv / "bin" / "python"
    if (
        python.exists()
        and subprocess.run([python, "-c", "import joeynmt"], capture_output=True).returncode == 0
    ):
        return python
    log(f"installing JoeyNMT 2.3.0 into {venv} (torch {torch_version} first)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, f"torch=={torch_version}"], check=True)
    subprocess.run([*pip, *JOEYNMT_PACKAGES], check=True)
    return python


def prepare_tokenizer(work: Path, data: Path, vocab_size: int = 8000) -> Path:
    """One joint SentencePiece model for both toolkits, and JoeyNMT's vocabulary file."""
    model = work / "spm" / "joint.spm"
    if not model.exists():
        model.parent.mkdir(parents=True, exist_ok=True)
        corpora = [str(data / "train.de"), str(data / "train.en")]
        command = [sys.executable, "-m", "seqcli", "tokenize", "train", *corpora, "--model", str(model)]
        run([*command, "--vocab-size", str(vocab_size)], log_to=work / "spm" / "train.log")
    tokenizer = Tokenizer.load(model)
    pieces = tokenizer.ids_to_pieces(list(range(SPECIAL_PIECES, tokenizer.vocab_size)))
    write_text_atomic(work / "spm" / "joeynmt.vocab", "\n".join(pieces) + "\n")
    return model


def joeynmt_config(work: Path, data: Path, spm: Path, steps: int, device: str, beam: int) -> Path:
    """JoeyNMT's configuration of the reference architecture, written as work/joeynmt-beamBEAM.yaml."""
    config = joeynmt_settings(work, data, spm, steps, device, beam)
    return write_joeynmt_config(config, work / f"joeynmt-beam{beam}.yaml")


def write_joeynmt_config(config: dict[str, Any], path: Path) -> Path:
    """Write a JoeyNMT configuration (JSON is YAML, which it reads)."""
    # YAML 1.1 reads JSON's 1e-06 as a string: give exponents a decimal point (1.0e-06).
    text = re.sub(r"(?<![.\d])(\d+)e([-+]\d+)", r"\1.0e\2", json.dumps(config, indent=1))
    write_text_atomic(path, text + "\n")
    return path


def joeynmt_settings(work: Path, data: Path, spm: Path, steps: int, device: str, beam: int) -> dict[str, Any]:
    """JoeyNMT's settings for the reference architecture, the model going to work/joeynmt-run."""
    side = {
        "max_length": 100, "min_length": 1, "lowercase": False, "normalize": False,
        "level": "bpe", "voc_limit": Tokenizer.load(spm).vocab_size, "voc_min_freq": 1,
        "voc_file": str(work / "spm" / "joeynmt.vocab"), "tokenizer_type": "sentencepiece",
        "tokenizer_cfg": {"model_file": str(spm), "model_type": "unigram", "character_coverage": 1.0,
                          "pretokenizer": "none"},
    }  # fmt: skip
    rnn = {"rnn_type": "lstm", "embeddings": {"embedding_dim": 256, "scale": False}, "dropout": 0.3,
           "num_layers": 2, "type": "recurrent"}  # fmt: skip
    config = {
        "name": "compare_joeynmt", "joeynmt_version": "2.3.0",
        "model_dir": str(work / "joeynmt-run"), "use_cuda": device != "cpu", "fp16": False, "random_seed": 42,
        "data": {
            "train": str(data / "train"), "dev": str(data / "valid"), "test": str(data / "test2016"),
            "dataset_type": "plain", "sample_train_subset": -1, "sample_dev_subset": -1,
            "src": {"lang": "de", **side}, "trg": {"lang": "en", **side},
            "special_symbols": {"unk_token": "<unk>", "pad_token": "<pad>", "bos_token": "<s>",
                                "eos_token": "</s>", "unk_id": 0, "pad_id": 1, "bos_id": 2, "eos_id": 3},
        },
        "testing": {
            "n_best": 1, "beam_size": beam, "beam_alpha": 1.0, "batch_size": 100, "batch_type": "sentence",
            "eval_metrics": ["bleu"], "max_output_length": -1, "min_output_length": 1,
            "return_prob": "none", "generate_unk": True, "sacrebleu_cfg": {"tokenize": "13a"},
        },
        "training": {
            "optimizer": "adam", "adam_betas": [0.9, 0.999], "learning_rate": 0.001,
            "learning_rate_min": 1.0e-6, "clip_grad_norm": 1.0, "weight_decay": 0.0, "loss": "crossentropy",
            "label_smoothing": 0.0, "batch_size": 4096, "batch_type": "token", "batch_multiplier": 1,
            "normalization": "tokens", "scheduling": "exponential", "decrease_factor": 1.0,
            "epochs": 100, "updates": steps, "validation_freq": steps, "logging_freq": 10,
            "early_stopping_metric": "bleu", "shuffle": True, "overwrite": True,
            "print_valid_sents": [0], "keep_best_ckpts": 1, "num_workers": 0,
        },
        "model": {
            "initializer": "xavier_uniform", "init_gain": 1.0, "bias_initializer": "zeros",
            "embed_initializer": "normal", "embed_init_weight": 0.1, "init_rnn_orthogonal": False,
            "lstm_forget_gate": 1.0, "tied_embeddings": False, "tied_softmax": False,
            "encoder": {**rnn, "hidden_size": 256, "bidirectional": True},
            "decoder": {**rnn, "hidden_size": 512, "hidden_dropout": 0.3, "input_feeding": True,
                        "init_hidden": "bridge", "attention": "luong"},
        },
    }  # fmt: skip
    return config


def seqcli_config(work: Path, data: Path, spm: Path, steps: int, name: str, **train: object) -> Path:
    """The same architecture, initialisation and optimisation as seqcli configuration; train
    overrides [train] options (batching, batch_tokens, bf16)."""
    base = load_toml(ROOT / "configs" / "multi30k-de-en.toml")
    values = merge(
        base,
        {
            "data": {"train": str(data / "train"), "valid": str(data / "valid"), "src_lang": "de",
                     "tgt_lang": "en", "max_tokens_per_sentence": 100},
            "tokenizer": {"joint": True, "src_model": str(spm), "tgt_model": str(spm)},
            # JoeyNMT's Xavier RNN weights (forget bias 1) and dropout places: on the embeddings,
            # between layers, on the fed-back attentional vector and before the combine layer.
            "model": {"embedding_dropout": 0.3, "dropout": 0.3, "input_feeding": True, "rnn_init": "xavier",
                      "forget_bias": 1.0, "dropout_placement": "input"},
            "train": {"learning_rate": 0.001, "batch_tokens": 4096, "max_steps": steps, "eval_every": steps,
                      "patience": 1000, "label_smoothing": 0.0, "lr_decay_factor": 1.0, "keep_checkpoints": 0,
                      "bf16": False, "clip_norm": 1.0, "seed": 42, **train},
            "decode": {"beam_size": 5, "length_penalty": 1.0, "batch_size": 100, "max_length_ratio": 1.5,
                       "max_length_offset": 0},
        },
    )  # fmt: skip
    path = work / f"{name}.toml"
    write_text_atomic(path, dumps_toml(config_to_dict(config_from_dict(values))))
    return path


# ---------------------------------------------------------------------------------------------
# Training

JOEY_VALID_LOSS = re.compile(r"Evaluation result \(greedy\):.* loss:\s+([0-9.]+)")
JOEY_WINDOW = re.compile(r"^(\S+ \S+) - INFO - .*Step:\s+(\d+),.*Tokens per Sec:\s+(\d+)")


def joeynmt_training_speed(train_log: Path) -> dict[str, float | None]:
    """Target tokens/s over JoeyNMT's 10-step logging windows, the first (warm-up) left out.

    Each window logs its rate; the log lines' timestamps give its length, so rate x length
    is the window's token count and the total is exact up to the timestamps' milliseconds."""
    windows = []
    for line in train_log.read_text(encoding="utf-8", errors="replace").splitlines():
        if match := JOEY_WINDOW.search(line):
            stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            windows.append((stamp, int(match.group(2)), float(match.group(3))))
    if len(windows) < 3:
        sys.exit(f"compare_joeynmt: too few training log lines in {train_log}")
    tokens = seconds = 0.0
    for (t0, _, _), (t1, _, rate) in zip(windows, windows[1:], strict=False):
        tokens, seconds = tokens + rate * (t1 - t0), seconds + (t1 - t0)
    steps = windows[-1][1] - windows[0][1]
    losses = JOEY_VALID_LOSS.findall(train_log.read_text(encoding="utf-8", errors="replace"))
    return {
        "valid_loss": float(losses[-1]) if losses else None,
        "train_target_tokens_per_second": round(tokens / seconds, 1),
        "real_target_tokens_per_batch": round(tokens / steps, 1),
        "measured_steps": steps,
    }


def seqcli_training_speed(run_dir: Path, steps: int) -> dict[str, float]:
    """From log.jsonl: the interval's tokens/s (all training steps, validation excluded)."""
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    final = records[-1]
    if final["step"] != steps:
        sys.exit(f"compare_joeynmt: {run_dir} stopped at step {final['step']}, not {steps}")
    return {
        "train_target_tokens_per_second": final["target_tokens_per_second"],
        "measured_steps": steps,
        "valid_loss": final["valid_loss"],
    }


# ---------------------------------------------------------------------------------------------
# Decoding

JOEY_GENERATION = re.compile(r"Generation took ([0-9.]+)\[sec\]")
SEQCLI_GENERATION = re.compile(r"generation ([0-9.]+) s")


def decode(
    kind: str, command: list[str], source: Path, stem: Path, reference: list[str], pieces: Tokenizer
) -> dict[str, float]:
    """Translate source with the command; its speed both ways, the output's scores, and its
    length in SentencePiece pieces (search time grows with it: an undertrained model that
    babbles longer outputs decodes fewer sentences a second)."""
    lines = len(reference)
    hyp, log_to = stem.with_suffix(".hyp"), stem.with_suffix(".log")
    whole = run(command, stdin=source, stdout=hyp, log_to=log_to)
    pattern = JOEY_GENERATION if kind == "joeynmt" else SEQCLI_GENERATION
    found = pattern.findall(log_to.read_text(encoding="utf-8", errors="replace"))
    if not found:
        sys.exit(f"compare_joeynmt: no generation time in {log_to}")
    generation = float(found[-1])
    hypotheses = hyp.read_text(encoding="utf-8").splitlines()
    scores = score(hypotheses, reference)
    generated = sum(len(ids) for ids in pieces.encode(hypotheses))
    return {
        "sentences": lines,
        "output_pieces": generated,
        "output_pieces_per_second_generation": round(generated / generation, 1),
        "generation_seconds": round(generation, 2),
        "whole_process_seconds": round(whole, 2),
        "sentences_per_second_generation": round(lines / generation, 1),
        "sentences_per_second_whole_process": round(lines / whole, 1),
        "bleu": scores.bleu,
        "chrf": scores.chrf,
    }


# ---------------------------------------------------------------------------------------------


def machine(device: str) -> dict[str, object]:
    import torch

    return {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device != "cpu" and torch.cuda.is_available() else None,
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "date": datetime.now().isoformat(timespec="seconds"),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def table(results: dict[str, Any]) -> str:
    joey, ours = results["joeynmt"], results["seqcli"]
    rows = [
        ("training, target tokens/s", joey["train"]["train_target_tokens_per_second"],
         ours["train"]["train_target_tokens_per_second"]),
        ("real target tokens per batch", joey["train"]["real_target_tokens_per_batch"],
         ours["train"]["real_target_tokens_per_batch"]),
        (f"training wall time for {results['steps']} steps, s", joey["train"]["wall_seconds"],
         ours["train"]["wall_seconds"]),
    ]  # fmt: skip
    for name in ("greedy", "beam5"):
        for measure, label in (("generation", "search only"), ("whole_process", "whole command")):
            key = f"sentences_per_second_{measure}"
            rows.append((f"test2016 {name}, sentences/s, {label}", joey[name][key], ours[name][key]))
        if "output_pieces" in ours[name]:
            rows.append((f"test2016 {name}, output length in pieces", joey[name]["output_pieces"],
                         ours[name]["output_pieces"]))  # fmt: skip
            key = "output_pieces_per_second_generation"
            rows.append((f"test2016 {name}, output pieces/s, search only", joey[name][key], ours[name][key]))
    steps = results["steps"]
    rows.append((f"valid BLEU (greedy) after {steps} steps", joey["valid"]["bleu"], ours["valid"]["bleu"]))
    rows.append((f"valid loss (teacher-forced, nats a token) after {steps} steps",
                 joey["train"].get("valid_loss"), ours["train"].get("valid_loss")))  # fmt: skip
    for name in ("greedy", "beam5"):
        rows.append((f"test2016 BLEU, {name}", joey[name]["bleu"], ours[name]["bleu"]))
    for key, variant in results.items():
        if key.startswith("seqcli_"):
            label, train = variant["label"], variant["train"]
            per_batch = train["real_target_tokens_per_batch"]
            rows.append((f"training, target tokens/s, seqcli {label} ({per_batch} real tokens a batch)",
                         joey["train"]["train_target_tokens_per_second"],
                         train["train_target_tokens_per_second"]))  # fmt: skip
            rows.append((f"valid BLEU (greedy) after {steps} steps, seqcli {label}", joey["valid"]["bleu"],
                         variant["valid"]["bleu"]))  # fmt: skip
            rows.append((f"valid loss after {steps} steps, seqcli {label}", joey["train"].get("valid_loss"),
                         train.get("valid_loss")))  # fmt: skip
    lines = ["| measure | JoeyNMT 2.3.0 | seqcli | seqcli / JoeyNMT |", "|---|---:|---:|---:|"]
    for label, a, b in rows:
        lines.append(
            f"| {label} | {a} | {b} | {ratio(b, a) if '/s' in label else ''} |"  # ratios of speeds only
        )
    search, whole = "sentences_per_second_generation", "sentences_per_second_whole_process"
    for name, flag in (("beam5_int8", "--quantize (int8)"), ("beam5_bf16", "--bf16")):
        if name in ours:
            q = ours[name]
            lines.append(
                f"| seqcli {flag}, beam 5: sentences/s search / whole command; BLEU | | "
                f"{q[search]} / {q[whole]}; {q['bleu']} | "
                f"{ratio(q[search], joey['beam5'][search])} / {ratio(q[whole], joey['beam5'][whole])} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=shared_data("multi30k"),
                        help="Directory with train/valid/test2016 .de/.en files.")  # fmt: skip
    parser.add_argument("--steps", type=int, default=300, help="Training updates for each toolkit.")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both toolkits).")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "compare-joeynmt")
    parser.add_argument("--joeynmt-venv", type=Path, default=ROOT / "runs" / "joeynmt-venv")
    parser.add_argument("--torch-version", default="2.13.0", help="torch to install beside JoeyNMT.")
    parser.add_argument(
        "--reuse-training", action="store_true", help="Keep the runs trained before in --work."
    )
    parser.add_argument(
        "--seqcli-first", action="store_true", help="Run seqcli before JoeyNMT at each stage."
    )
    parser.add_argument(
        "--out", type=Path, help="JSON file [default: benchmarks/results/compare-joeynmt-DEVICE.json]"
    )
    parser.add_argument("--no-bf16", action="store_true", help="Skip the seqcli run with bf16 autocast.")
    parser.add_argument(
        "--no-variants", action="store_true", help="Train no seqcli variants (bf16, other batching, matched)."
    )
    parser.add_argument(
        "--batching",
        choices=("random", "buckets"),
        default="random",
        help="seqcli's batches: random (mixed lengths, like JoeyNMT's) or buckets; the other one "
        "is trained too, as a variant.",
    )
    parser.add_argument(
        "--matched-batch-tokens",
        type=int,
        default=-1,
        help="Also train seqcli with this batch budget, about JoeyNMT's real target tokens a batch "
        "(default: 1750 with random batching, 2000 with buckets, which pad); 0 = skip.",
    )
    args = parser.parse_args()
    data = args.data.resolve()
    for split in ("train", "valid", "test2016"):
        for lang in ("de", "en"):
            if not (data / f"{split}.{lang}").is_file():
                sys.exit(f"compare_joeynmt: --data {data}: {split}.{lang} is missing")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    out = args.out or HERE / "results" / f"compare-joeynmt-{args.device.replace(':', '')}.json"
    started = provenance()

    joey_python = joeynmt_python(args.joeynmt_venv.resolve(), args.torch_version)
    spm = prepare_tokenizer(work, data)
    pieces = Tokenizer.load(spm)
    joey_cfg = {beam: joeynmt_config(work, data, spm, args.steps, args.device, beam) for beam in (1, 5)}
    seq_cfg = seqcli_config(work, data, spm, args.steps, "seqcli", batching=args.batching)
    joey_run = work / "joeynmt-run"
    joey_cmd = [str(joey_python), "-m", "joeynmt"]
    seq_cmd = [sys.executable, "-m", "seqcli"]
    results: dict[str, Any] = {"steps": args.steps, "data": str(data), "machine": machine(args.device)}
    joey: dict[str, Any] = {}
    ours: dict[str, Any] = {}

    def alternate(joey_stage: Callable[[], None], seq_stage: Callable[[], None]) -> None:
        for stage in (seq_stage, joey_stage) if args.seqcli_first else (joey_stage, seq_stage):
            stage()

    def train_joeynmt() -> None:
        shutil.rmtree(joey_run, ignore_errors=True)
        wall = run([*joey_cmd, "train", str(joey_cfg[5]), "--skip-test"], log_to=work / "joeynmt-train.log")
        joey["train"] = {**joeynmt_training_speed(joey_run / "train.log"), "wall_seconds": round(wall, 1)}

    def train_seqcli(name: str = "seqcli", config: Path = seq_cfg, into: dict[str, Any] = ours) -> None:
        run_dir = work / f"{name}-run"
        shutil.rmtree(run_dir, ignore_errors=True)
        command = [*seq_cmd, "train", "--config", str(config), "--out", str(run_dir), "--device", args.device]
        wall = run(command, log_to=work / f"{name}-train.log")
        into["train"] = {
            **seqcli_training_speed(run_dir, args.steps),
            "real_target_tokens_per_batch": real_tokens_per_batch(config),
            "wall_seconds": round(wall, 1),
        }

    trained = work / "training.json"  # the training figures, for --reuse-training
    if args.reuse_training and trained.exists():
        joey["train"], ours["train"] = json.loads(trained.read_text())
    else:
        alternate(train_joeynmt, train_seqcli)
        write_text_atomic(trained, json.dumps([joey["train"], ours["train"]]) + "\n")

    splits = {name: (data / f"{name}.de", read_parallel(str(data / name), "de", "en")[1])
              for name in ("test2016", "valid")}  # fmt: skip

    def joey_decode(name: str, beam: int, split: str) -> None:
        command = [*joey_cmd, "translate", str(joey_cfg[beam])]  # the model_dir's best.ckpt
        source, reference = splits[split]
        joey[name] = decode("joeynmt", command, source, work / f"joeynmt-{name}", reference, pieces)

    def seq_decode(
        name: str,
        beam: int,
        split: str,
        *extra: str,
        run_name: str = "seqcli",
        into: dict[str, Any] = ours,
    ) -> None:
        run_dir = str(work / f"{run_name}-run")
        command = [
            *seq_cmd,
            "translate",
            run_dir,
            "--beam-size",
            str(beam),
            "--device",
            args.device,
            "--timings",
        ]
        source, reference = splits[split]
        into[name] = decode(
            "seqcli", [*command, *extra], source, work / f"{run_name}-{name}", reference, pieces
        )

    for name, beam in (("greedy", 1), ("beam5", 5)):
        alternate(partial(joey_decode, name, beam, "test2016"), partial(seq_decode, name, beam, "test2016"))
    alternate(lambda: joey_decode("valid", 1, "valid"), lambda: seq_decode("valid", 1, "valid"))
    if args.device == "cpu":
        seq_decode("beam5_int8", 5, "test2016", "--quantize")
    import torch

    from seqcli.device import has_native_bf16

    if has_native_bf16(torch.device(args.device)):
        seq_decode("beam5_bf16", 5, "test2016", "--bf16")
    # seqcli variants, trained for the same steps: bf16 autocast, the other batching, and
    # batches holding as many real target tokens as JoeyNMT's (a speed-up is not just bigger
    # batches).
    other = "buckets" if args.batching == "random" else "random"
    matched = args.matched_batch_tokens
    if matched < 0:
        matched = 1750 if args.batching == "random" else 2000
    variants: dict[str, tuple[str, dict[str, object]]] = {}
    if args.no_variants:
        pass
    elif not args.no_bf16:
        variants["bf16"] = ("bf16 autocast", {"batching": args.batching, "bf16": True})
    if not args.no_variants:
        variants[other] = (f"{other} batching", {"batching": other})
    if matched and not args.no_variants:
        variants["matched_batches"] = (
            "batches matched to JoeyNMT's real tokens",
            {"batching": args.batching, "batch_tokens": matched},
        )
    for name, (label, options) in variants.items():
        figures: dict[str, Any] = {"label": label, "options": options}
        config = seqcli_config(work, data, spm, args.steps, f"seqcli-{name}", **options)  # type: ignore[arg-type]
        train_seqcli(f"seqcli-{name}", config, figures)
        seq_decode("valid", 1, "valid", run_name=f"seqcli-{name}", into=figures)
        results[f"seqcli_{name}"] = figures
    results["joeynmt"], results["seqcli"] = joey, ours
    results["ratios"] = {
        "train_target_tokens_per_second": ratio(
            ours["train"]["train_target_tokens_per_second"], joey["train"]["train_target_tokens_per_second"]
        ),
        **{
            f"{name}_{measure}": ratio(
                ours[name][f"sentences_per_second_{measure}"], joey[name][f"sentences_per_second_{measure}"]
            )
            for name in ("greedy", "beam5")
            for measure in ("generation", "whole_process")
        },
    }
    write_result(out, results, started)
    markdown = table(results)
    write_text_atomic(out.with_suffix(".md"), markdown)
    print(markdown)
    log(f"wrote {out} and {out.with_suffix('.md')}")


def real_tokens_per_batch(config_path: Path) -> float:
    """Mean real target tokens of seqcli's batches for this configuration (its batching)."""
    from seqcli.config import config_from_dict as build
    from seqcli.corpus import encode_parallel, make_batches

    config = build(load_toml(config_path))
    src, tgt = read_parallel(config.data.train, config.data.src_lang, config.data.tgt_lang)
    spm = Tokenizer.load(Path(config.tokenizer.src_model))
    examples = encode_parallel(src, tgt, spm, spm, config.data.max_tokens_per_sentence).examples
    batches = make_batches(examples, config.train.batching, config.train.batch_tokens, seed=0)
    return round(sum(len(examples[i].tgt) + 1 for b in batches for i in b) / len(batches), 1)


if __name__ == "__main__":
    main()
