"""Training and decoding speed of seqcli for one configuration and corpus.

Training: target tokens per second (real tokens, padding excluded) over --train-steps
updates after a short warm-up, with the run's architecture and batch size, on --train.
Decoding: sentences per second translating the --test sources with the run's trained
weights, greedy and beam 5, counted as generation only (search on already-encoded ids)
and as the whole call (tokenize, search, detokenize), and the BLEU of those translations
(sacreBLEU, cased, 13a). --quantize measures the same again with int8 weights
(`seqcli translate --quantize`), so the speed and the BLEU it costs sit side by side.
The record also keeps what the run's own training found (updates, seconds, best valid BLEU,
the tuned length penalty), so the figures say which model they were measured on.
--rounds N repeats the whole measure N times: the figures are the medians, and each round's
own figures are kept under "rounds".

    python benchmarks/speed.py --run-dir runs/m30k --train ../shared/data/multi30k/train \
        --test ../shared/data/multi30k/test2016 --src-lang de --tgt-lang en \
        --out benchmarks/results/multi30k-cpu.json

Prints a table and writes the figures, the machine, torch version and device as JSON.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from provenance import provenance, write_result
from rounds import medians

from seqcli import checkpoint
from seqcli.corpus import bucket_batches, read_parallel
from seqcli.device import pick_device
from seqcli.finish import read_finish
from seqcli.metrics import score
from seqcli.tasks import new_trainer
from seqcli.translate import Translator
from seqcli.translation_task import TranslationTask


def machine_info(device: torch.device) -> dict[str, object]:
    """What the figures ran on beyond `provenance()` (which records the CPU, cores, torch,
    Python and load average): the device, its GPU and torch's thread count."""
    return {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_training(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    run = checkpoint.load_run(args.run_dir)
    joint = run.config.tokenizer.joint  # the run's own tokenizers: one model for both sides, or two
    config = replace(
        run.config,
        data=replace(
            run.config.data, train=args.train, valid=args.test, src_lang=args.src_lang, tgt_lang=args.tgt_lang
        ),
        train=replace(run.config.train, kernels=getattr(args, "kernels", None) or run.config.train.kernels),
        tokenizer=replace(
            run.config.tokenizer,
            src_model=str(Path(args.run_dir) / checkpoint.SRC_SPM),
            tgt_model="" if joint else str(Path(args.run_dir) / checkpoint.TGT_SPM),
        ),
    )
    trainer = new_trainer(config, Path(args.run_dir) / "bench-unused", str(device))
    task = trainer.task
    assert isinstance(task, TranslationTask)
    examples = task.train_items
    batches = bucket_batches(examples, config.train.batch_tokens, seed=1)
    for indices in batches[: args.warmup_steps]:
        trainer.train_update([[examples[i] for i in indices]], 0)
    sync(device)
    tokens, start = 0, time.perf_counter()
    timed = batches[args.warmup_steps : args.warmup_steps + args.train_steps]
    for indices in timed:
        tokens += trainer.train_update([[examples[i] for i in indices]], 0)[1]
    sync(device)
    seconds = time.perf_counter() - start
    return {
        "train_steps": len(timed),
        "train_target_tokens": tokens,
        "train_seconds": round(seconds, 2),
        "train_target_tokens_per_second": round(tokens / seconds, 1),
        "parameters": sum(p.numel() for p in task.model.parameters() if p.requires_grad),
        "kernels": config.train.kernels,
    }


def measure_decoding(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Greedy and beam 5 decoding speed and BLEU; with args.quantize, int8 as well ("int8_...")."""
    sources, references = read_parallel(args.test, args.src_lang, args.tgt_lang)
    sources, references = sources[: args.decode_lines], references[: args.decode_lines]
    results: dict[str, float] = {"decode_sentences": len(sources)}
    for quantize in (False, True) if getattr(args, "quantize", False) else (False,):
        translator = Translator.from_run_dir(Path(args.run_dir), {}, device, quantize=quantize)
        ids = translator.src_tokenizer.encode(sources)
        for beam in (1, 5):
            decode = replace(translator.decode, beam_size=beam, n_best=1)
            translator.translate_ids(ids[:16], decode)  # warm-up
            sync(device)
            start = time.perf_counter()
            translator.translate_ids(ids, decode)
            sync(device)
            generation = time.perf_counter() - start
            start = time.perf_counter()
            hypotheses = translator.translate_lines(sources, beam_size=beam)
            sync(device)
            whole = time.perf_counter() - start
            name = ("int8_" if quantize else "") + ("greedy" if beam == 1 else f"beam{beam}")
            results[f"{name}_sentences_per_second_generation"] = round(len(sources) / generation, 1)
            results[f"{name}_sentences_per_second_with_tokenization"] = round(len(sources) / whole, 1)
            results[f"{name}_bleu"] = round(score(hypotheses, references).bleu, 2)
    return results


def trained_run(run_dir: Path) -> dict[str, Any]:
    """What the run's training logged: its updates, training seconds (validation included), best
    valid BLEU (greedy), and the length penalty tuned at the end with its valid BLEU."""
    log = checkpoint.read_log(run_dir)
    tuned = read_finish(run_dir).get("length_penalty", {})
    chosen = tuned.get("chosen")
    return {
        "updates": log[-1]["step"] if log else 0,
        "seconds": log[-1]["elapsed_seconds"] if log else 0.0,
        "best_valid_bleu": max((r["valid_bleu"] for r in log if "valid_bleu" in r), default=None),
        "length_penalty": chosen,
        "valid_bleu_beam": max(tuned.get("valid_bleu", {}).values(), default=None),  # the chosen's
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", required=True, help="A trained run (its config, tokenizers, weights).")
    parser.add_argument("--train", required=True, help="Training corpus prefix.")
    parser.add_argument("--test", required=True, help="Test corpus prefix for decoding.")
    parser.add_argument("--src-lang", required=True)
    parser.add_argument("--tgt-lang", required=True)
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--warmup-steps", type=int, default=3)
    parser.add_argument("--decode-lines", type=int, default=1000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quantize", action="store_true", help="Decode with int8 weights too.")
    parser.add_argument("--kernels", choices=("fast", "reference"), help="train.kernels [default: the run's]")
    parser.add_argument("--rounds", type=int, default=1, help="Repeat the measure; report the medians.")
    parser.add_argument("--out", type=Path, help="JSON file for the figures.")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds: {args.rounds} is not a positive count")
    started = provenance()
    device = pick_device(args.device)
    torch.manual_seed(1)
    figures = {
        "run_dir": str(args.run_dir),
        "train": args.train,
        "test": args.test,
        "machine": machine_info(device),
        "trained_run": trained_run(Path(args.run_dir)),
    }
    rounds = []
    for number in range(1, args.rounds + 1):
        rounds.append({**measure_training(args, device), **measure_decoding(args, device)})
        if args.rounds > 1:
            print(f"round {number}/{args.rounds} measured", flush=True)
    figures.update(medians(rounds))
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.rounds > 1:
        figures["rounds"] = rounds
    if args.out:
        write_result(args.out, figures, started)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
