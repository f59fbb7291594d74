"""Greedy and beam search against scripted fake decoders whose scores can be checked by hand."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

from seqcli.search import Hypothesis, SearchTrace, beam_search, greedy_search, length_penalty

EOS, BOS, A, B, C = 0, 1, 2, 3, 4
VOCAB = 5
Prefix = tuple[int, ...]  # tokens generated so far, without BOS
Table = dict[tuple[int, Prefix], dict[int, float]]  # (sentence, prefix) -> {token: prob}


@dataclass
class Rows:
    """Fake state or memory: one tensor of per-row data, logging the size of every select."""

    data: Tensor
    selects: list[int]

    def select(self, index: Tensor) -> Rows:
        self.selects.append(len(index))
        return Rows(self.data[index], self.selects)


class FakeDecoder:
    """A step function: P(next | sentence id from memory, prefix from state) from a function."""

    def __init__(self, next_log_probs: Callable[[int, Prefix], Tensor]):
        self.next_log_probs = next_log_probs
        self.rows_seen: list[int] = []  # rows decoded at each step

    def __call__(self, prev_tokens: Tensor, state: Rows, memory: Rows) -> tuple[Tensor, Rows]:
        assert len(prev_tokens) == len(state.data) == len(memory.data)
        self.rows_seen.append(len(prev_tokens))
        prefixes = torch.cat((state.data, prev_tokens.unsqueeze(1)), dim=1)  # (N, t), BOS first
        assert (prefixes[:, 0] == BOS).all()
        rows = [
            self.next_log_probs(int(sent), tuple(prefix[1:].tolist()))
            for sent, prefix in zip(memory.data, prefixes, strict=True)
        ]
        return torch.stack(rows), Rows(prefixes, state.selects)


def scripted(table: Table) -> FakeDecoder:
    """A decoder reading a hand-written table; a prefix not in the table is followed by EOS."""

    def next_log_probs(sent: int, prefix: Prefix) -> Tensor:
        probs = torch.zeros(VOCAB)
        for token, prob in table.get((sent, prefix), {EOS: 1.0}).items():
            probs[token] = prob
        return probs.log()

    return FakeDecoder(next_log_probs)


def randomized(seed: int, eos_bias: float = 0.0, vocab: int = 6) -> FakeDecoder:
    """A decoder whose log-probs are a seeded random function of (sentence, prefix)."""

    def next_log_probs(sent: int, prefix: Prefix) -> Tensor:
        generator = torch.Generator().manual_seed(hash((seed, sent, prefix)) % 2**62)
        logits = torch.randn(vocab, generator=generator)
        logits[BOS] = -math.inf
        logits[EOS] += eos_bias
        return logits.log_softmax(dim=0)

    return FakeDecoder(next_log_probs)


@dataclass
class Run:
    """The results of one search and what the fake decoder saw along the way."""

    results: list[list[Hypothesis]]
    rows_seen: list[int]
    state_selects: list[int]
    memory_selects: list[int]


def decode(
    decoder: FakeDecoder,
    sents: list[int],
    limits: list[int],
    beam: int = 0,
    n_best: int = 1,
    alpha: float = 0.0,
    trace: SearchTrace | None = None,
) -> Run:
    """Greedy search when beam is 0, else beam search, of the given sentence ids."""
    state = Rows(torch.zeros((len(sents), 0), dtype=torch.long), [])
    memory = Rows(torch.tensor(sents), [])
    max_lengths = torch.tensor(limits)
    if beam == 0:
        results = greedy_search(decoder, state, memory, BOS, EOS, max_lengths, trace)
    else:
        results = beam_search(decoder, state, memory, BOS, EOS, max_lengths, beam, n_best, alpha, trace)
    return Run(results, decoder.rows_seen, state.selects, memory.selects)


def log(*probs: float) -> float:
    return sum(math.log(p) for p in probs)


def assert_hypotheses(found: list[Hypothesis], expected: list[tuple[list[int], float, float]]):
    assert [h.tokens for h in found] == [tokens for tokens, _, _ in expected]
    assert [h.score for h in found] == pytest.approx([score for _, score, _ in expected], abs=1e-5)
    normalized = [h.normalized_score for h in found]
    assert normalized == pytest.approx([norm for _, _, norm in expected], abs=1e-5)


# Sentence 0, a garden path: greedy takes A (0.6) but then only EOS 0.4 is likely; beam
# also keeps B (0.4), which ends with EOS 0.9: B EOS = 0.36 beats A EOS = 0.24.
GARDEN = {
    (0, ()): {A: 0.6, B: 0.4},
    (0, (A,)): {EOS: 0.4, A: 0.3, C: 0.3},
    (0, (B,)): {EOS: 0.9, C: 0.1},
}
# Sentence 1: A C EOS is the argmax path; B then loops on A forever (no EOS).
CHAIN = {
    (1, ()): {A: 0.6, B: 0.4},
    (1, (A,)): {C: 0.7, EOS: 0.3},
    (1, (A, C)): {EOS: 0.8, B: 0.2},
    **{(1, (B,) + (A,) * n): {A: 0.9, EOS: 0.1} for n in range(10)},
}
# Sentence 2, one finished early, one longer: step 2's candidates are A EOS 0.42, B C 0.4,
# A C 0.18; with K = 2, A EOS finishes and B C goes on alone to B C EOS = 0.4 at step 3.
SHORT_OR_LONG = {
    (2, ()): {A: 0.6, B: 0.4},
    (2, (A,)): {EOS: 0.7, C: 0.3},
    (2, (B,)): {C: 1.0},
}
# Sentence 3, shrinking beam: step 2's candidates are A EOS .42, B C .24, A C .18, B A .16.
# A EOS finishes and retires its slot, so step 3 keeps only the best child of B C, B C A
# .12 (not B C C .096), and step 4 only its best child, B C A EOS .048. Two live slots
# would have found A C EOS .18 (at step 3) or B C C EOS .096 (at step 4) instead.
SHRINK = {
    (3, ()): {A: 0.6, B: 0.4},
    (3, (A,)): {EOS: 0.7, C: 0.3},
    (3, (B,)): {C: 0.6, A: 0.4},
    (3, (B, C)): {A: 0.5, C: 0.4, EOS: 0.1},
    (3, (B, C, A)): {EOS: 0.4, A: 0.3, C: 0.2, B: 0.1},
}
TABLE = GARDEN | CHAIN | SHORT_OR_LONG | SHRINK


def test_length_penalty_follows_gnmt():
    assert length_penalty(3, 0.0) == 1.0
    assert length_penalty(1, 1.0) == 1.0
    assert length_penalty(7, 0.5) == pytest.approx(math.sqrt(2))
    assert length_penalty(torch.tensor([1, 7]), 2.0).tolist() == pytest.approx([1.0, 4.0])


def test_greedy_picks_argmax_and_stops_at_eos():
    run = decode(scripted(TABLE), [1, 0], [10, 10])
    assert_hypotheses(run.results[0], [([A, C], log(0.6, 0.7, 0.8), log(0.6, 0.7, 0.8))])
    assert_hypotheses(run.results[1], [([A], log(0.6, 0.4), log(0.6, 0.4))])
    # Sentence 0 ends after 2 steps, sentence 1 after 3.
    assert run.rows_seen == [2, 2, 1]


def test_greedy_respects_max_lengths_counting_eos_as_a_step():
    run = decode(scripted(TABLE), [1, 1, 1], [3, 2, 1])
    # A C EOS takes exactly 3 steps; with 2 steps A C is cut before its EOS; with 1, A.
    assert_hypotheses(run.results[0], [([A, C], log(0.6, 0.7, 0.8), log(0.6, 0.7, 0.8))])
    assert_hypotheses(run.results[1], [([A, C], log(0.6, 0.7), log(0.6, 0.7))])
    assert_hypotheses(run.results[2], [([A], log(0.6), log(0.6))])
    assert run.rows_seen == [3, 2, 1]


def test_greedy_cuts_a_sentence_that_never_ends():
    looping = {(9, (A,) * n): {A: 0.9, EOS: 0.1} for n in range(10)}
    run = decode(scripted(looping), [9], [4])
    assert_hypotheses(run.results[0], [([A] * 4, log(0.9) * 4, log(0.9) * 4)])


def test_beam_finds_what_greedy_misses():
    greedy = decode(scripted(TABLE), [0], [10])
    assert greedy.results[0][0].tokens == [A]
    run = decode(scripted(TABLE), [0], [10], beam=2, n_best=2)
    # Step 2 keeps B EOS 0.36 and A EOS 0.24 (not A A or A C, 0.18 each): both finish.
    expected = [([B], log(0.4, 0.9), log(0.4, 0.9)), ([A], log(0.6, 0.4), log(0.6, 0.4))]
    assert_hypotheses(run.results[0], expected)
    assert run.rows_seen == [2, 2]


def test_finished_hypotheses_are_kept_while_others_continue():
    run = decode(scripted(TABLE), [2], [10], beam=2, n_best=2)
    expected = [([A], log(0.6, 0.7), log(0.6, 0.7)), ([B, C], log(0.4), log(0.4))]
    assert_hypotheses(run.results[0], expected)
    assert run.rows_seen == [2, 2, 2]


def test_shrinking_beam_retires_the_slot_of_a_finished_hypothesis():
    run = decode(scripted(TABLE), [3], [10], beam=2, n_best=2)
    bca_eos = log(0.4, 0.6, 0.5, 0.4)
    expected = [([A], log(0.6, 0.7), log(0.6, 0.7)), ([B, C, A], bca_eos, bca_eos)]
    assert_hypotheses(run.results[0], expected)
    assert run.rows_seen == [2, 2, 2, 2]


def test_first_step_dead_slots_refill_later():
    # K = 3, but the first step has only two candidates (A, B); the third slot stays open, so
    # step 2 keeps A EOS .42, B C .24 and A C .18. Step 3 (two slots) keeps A C EOS .18 and
    # B C A .12; step 4 (one slot) keeps B C A EOS .048.
    run = decode(scripted(TABLE), [3], [10], beam=3, n_best=3)
    expected = [([A], log(0.42), log(0.42)), ([A, C], log(0.18), log(0.18))]
    assert_hypotheses(run.results[0], expected + [([B, C, A], log(0.048), log(0.048))])
    assert run.rows_seen == [3, 3, 3, 3]


def test_beam_stops_early_when_no_live_hypothesis_can_win():
    # After step 2, A EOS (0.42) is finished and B C (0.4) can only fall: done at once.
    run = decode(scripted(TABLE), [2], [10], beam=2, n_best=1)
    assert_hypotheses(run.results[0], [([A], log(0.42), log(0.42))])
    assert run.rows_seen == [2, 2]


def test_length_penalty_changes_the_winner():
    # alpha = 1: A EOS has length 2, log(.42) / (7/6) = -0.744; B C EOS has length 3,
    # log(.4) / (8/6) = -0.687 and wins. After step 2 B C could still reach log(.4) / lp(3)
    # (limit 3), above -0.744, so the search must not stop there.
    run = decode(scripted(TABLE), [2], [3], beam=2, n_best=1, alpha=1.0)
    assert_hypotheses(run.results[0], [([B, C], log(0.4), log(0.4) * 6 / 8)])
    assert run.rows_seen == [2, 2, 2]
    run = decode(scripted(TABLE), [2], [3], beam=2, n_best=2, alpha=1.0)
    expected = [([B, C], log(0.4), log(0.4) * 6 / 8), ([A], log(0.42), log(0.42) * 6 / 7)]
    assert_hypotheses(run.results[0], expected)


def test_hypotheses_cut_at_the_limit_are_normalized_by_their_own_length():
    # Limit 2: B C is cut without EOS, length 2: log(.4) / (7/6) = -0.785 < -0.744 (A EOS).
    run = decode(scripted(TABLE), [2], [2], beam=2, n_best=2, alpha=1.0)
    expected = [([A], log(0.42), log(0.42) * 6 / 7), ([B, C], log(0.4), log(0.4) * 6 / 7)]
    assert_hypotheses(run.results[0], expected)


@pytest.mark.parametrize("seed", range(40))
def test_beam_of_one_equals_greedy(seed: int):
    limits = torch.randint(1, 9, (4,), generator=torch.Generator().manual_seed(seed)).tolist()
    greedy = decode(randomized(seed), [0, 1, 2, 3], limits)
    beam = decode(randomized(seed), [0, 1, 2, 3], limits, beam=1)
    assert beam.results == greedy.results
    assert beam.rows_seen == greedy.rows_seen


@pytest.mark.parametrize("seed", range(15))
@pytest.mark.parametrize("beam", [0, 3])
def test_results_do_not_depend_on_batching(seed: int, beam: int):
    sents, limits = [0, 1, 2, 3, 4], [7, 2, 5, 9, 1]
    n_best = 2 if beam else 1
    together = decode(randomized(seed, eos_bias=-0.5), sents, limits, beam, n_best, 0.8)
    one_by_one = [
        decode(randomized(seed, eos_bias=-0.5), [sent], [limit], beam, n_best, 0.8).results[0]
        for sent, limit in zip(sents, limits, strict=True)
    ]
    assert together.results == one_by_one


def test_beam_returns_n_best_distinct_hypotheses_in_normalized_order():
    run = decode(randomized(7), [0, 1, 2], [6, 6, 6], beam=4, n_best=4, alpha=0.6)
    for found in run.results:
        assert len(found) == 4
        assert len({tuple(h.tokens) for h in found}) == 4
        normalized = [h.normalized_score for h in found]
        assert normalized == sorted(normalized, reverse=True)
        for h in found:
            length = len(h.tokens) + (len(h.tokens) < 6)  # the EOS counts unless cut
            assert h.normalized_score == pytest.approx(h.score / length_penalty(length, 0.6))


@pytest.mark.parametrize(("beam", "rows"), [(0, [3, 3, 2, 1, 1]), (2, [6, 6, 4, 2, 2])])
def test_done_sentences_leave_the_batch_and_memory_is_selected_rarely(beam: int, rows: list[int]):
    # No EOS ever, so sentences end exactly at their limits: 2, 5 and 3 steps.
    run = decode(randomized(0, eos_bias=-math.inf), [0, 1, 2], [2, 5, 3], beam)
    assert run.rows_seen == rows
    k = max(beam, 1)
    # Memory: repeated K times once, then selected when sentences leave after steps 2 and 3.
    assert run.memory_selects == [3 * k, 2 * k, k]
    if beam:
        assert len(run.state_selects) == 1 + 4  # the repeat, then a reorder after each step


@pytest.mark.parametrize(("beam_size", "n_best"), [(2, 3), (1, 2), (3, 0)])
def test_bad_n_best_raises(beam_size: int, n_best: int):
    with pytest.raises(ValueError, match="n_best"):
        decode(scripted(TABLE), [0], [5], beam=beam_size, n_best=n_best)


def test_max_lengths_below_one_raise():
    with pytest.raises(ValueError, match="max_lengths"):
        decode(scripted(TABLE), [0, 1], [3, 0])


def fates(trace: SearchTrace) -> list[list[tuple[int | None, int, str]]]:
    """Per step, each candidate as (parent slot, token, status), best score first."""
    return [
        [(n.parent, n.token, n.status) for n in sorted(step, key=lambda n: -n.score)] for step in trace.steps
    ]


def test_a_trace_shows_each_candidate_and_why_the_search_stopped():
    trace = SearchTrace(alternatives=3)
    run = decode(scripted(TABLE), [2], [10], beam=2, n_best=1, trace=trace)
    assert_hypotheses(run.results[0], [([A], log(0.42), log(0.42))])
    # Step 1 from the empty prefix: A .6 and B .4 (the other tokens are impossible). Step 2:
    # A EOS .42 finishes, B C .4 is kept, A A .18 (below both) is pruned.
    steps = fates(trace)
    assert steps[0] == [(None, A, "kept"), (None, B, "kept")]
    a_slot = next(n.slot for n in trace.steps[0] if n.token == A)
    b_slot = next(n.slot for n in trace.steps[0] if n.token == B)
    assert steps[1][:2] == [(a_slot, EOS, "finished"), (b_slot, C, "kept")]
    assert all(status == "pruned" for _, _, status in steps[1][2:])
    assert "cannot be beaten" in trace.stop_reason and len(trace.steps) == 2
    finished = next(n for n in trace.steps[1] if n.status == "finished")
    assert finished.score == pytest.approx(log(0.42)) and finished.log_prob == pytest.approx(log(0.7))


def test_a_trace_marks_hypotheses_the_length_limit_ended():
    trace = SearchTrace()
    decode(scripted(TABLE), [2], [2], beam=2, n_best=2, alpha=1.0, trace=trace)
    assert trace.stop_reason == "the length limit: 2 steps"
    ended = [n for n in trace.steps[1] if n.status == "ended"]
    assert [n.token for n in ended] == [C]
    assert ended[0].normalized_score == pytest.approx(log(0.4) * 6 / 7)
    trace = SearchTrace()
    decode(scripted(TABLE), [3], [10], beam=2, n_best=2, trace=trace)
    assert trace.stop_reason.startswith("no live hypothesis left")


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("beam", [0, 3])
def test_a_trace_changes_nothing_and_its_tree_spells_the_answers(seed: int, beam: int):
    plain = decode(randomized(seed, eos_bias=1.0), [0], [8], beam=beam, n_best=max(beam, 1), alpha=0.6)
    trace = SearchTrace()
    traced = decode(
        randomized(seed, eos_bias=1.0), [0], [8], beam=beam, n_best=max(beam, 1), alpha=0.6, trace=trace
    )
    assert traced.results == plain.results
    spelled = set()
    for t, step in enumerate(trace.steps, start=1):
        for node in step:
            if node.status in ("finished", "ended"):
                tokens, parent = [node.token], node.parent
                for earlier in range(t - 1, 0, -1):
                    (up,) = [n for n in trace.steps[earlier - 1] if n.slot == parent and n.status == "kept"]
                    tokens.insert(0, up.token)
                    parent = up.parent
                spelled.add(
                    (tuple(tokens[:-1] if node.status == "finished" else tokens), round(node.score, 5))
                )
    assert {(tuple(h.tokens), round(h.score, 5)) for h in plain.results[0]} <= spelled


def test_a_trace_follows_one_sentence():
    with pytest.raises(ValueError, match="one sentence"):
        decode(scripted(TABLE), [0, 1], [5, 5], beam=2, trace=SearchTrace())
