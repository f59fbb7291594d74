import math

import pytest
import torch

from seqcli.teacher import TeacherForcingSchedule, draw_gold_mask


def test_constant() -> None:
    assert TeacherForcingSchedule("constant", start=0.75).gold_probability(10**6) == 0.75


def test_linear_decays_to_its_floor() -> None:
    schedule = TeacherForcingSchedule("linear", start=1.0, minimum=0.25, slope=0.01)
    assert schedule.gold_probability(0) == 1.0
    assert schedule.gold_probability(50) == pytest.approx(0.5)
    assert schedule.gold_probability(1000) == 0.25


def test_exponential_is_k_to_the_step() -> None:
    schedule = TeacherForcingSchedule("exponential", k=0.99, minimum=0.1)
    assert schedule.gold_probability(0) == 1.0
    assert schedule.gold_probability(100) == pytest.approx(0.99**100)
    assert schedule.gold_probability(10**5) == 0.1


def test_inverse_sigmoid_matches_bengio_et_al() -> None:
    schedule = TeacherForcingSchedule("inverse_sigmoid", k=100.0)
    assert schedule.gold_probability(0) == pytest.approx(100 / 101)
    assert schedule.gold_probability(500) == pytest.approx(100 / (100 + math.exp(5)))
    assert schedule.gold_probability(10**7) == 0.0


@pytest.mark.parametrize("kind", ["linear", "exponential", "inverse_sigmoid"])
def test_decays_never_increase(kind: str) -> None:
    schedule = TeacherForcingSchedule(kind, slope=1e-3, k=0.999 if kind == "exponential" else 50.0)
    values = [schedule.gold_probability(step) for step in range(0, 5000, 10)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert values[0] > values[-1]


def test_gold_mask_follows_the_probability() -> None:
    generator = torch.Generator().manual_seed(0)
    assert draw_gold_mask((4, 5), 1.0, generator) is None
    mask = draw_gold_mask((200, 50), 0.3, generator)
    assert mask is not None and mask.shape == (200, 50)
    assert abs(mask.float().mean().item() - 0.3) < 0.02
