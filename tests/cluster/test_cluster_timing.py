"""The timestamps and allreduce timing a cluster worker records, without a cluster: the communication
hook leaves DDP's gradients as they were, and the first-step mark is stamped once, by the first step."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.distributed as dist
from torch import nn

from dcloop.cluster._train import _CommTimer, _first_step


@pytest.fixture
def one_rank_group() -> Iterator[None]:
    """A gloo process group of one rank, in this process (DDP works on it as on many)."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _grads(hook: _CommTimer | None, steps: int) -> list[torch.Tensor]:
    torch.manual_seed(0)
    net = nn.parallel.DistributedDataParallel(nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2)))
    if hook is not None:
        net.register_comm_hook(None, hook.hook())
    data = torch.randn(steps, 4, 6, generator=torch.Generator().manual_seed(1))
    for batch in data:
        net.zero_grad()
        net(batch).square().mean().backward()
    return [p.grad.clone() for p in net.parameters() if p.grad is not None]


def test_comm_timer_counts_each_allreduce_and_keeps_the_gradients(one_rank_group: None) -> None:
    timer = _CommTimer()
    timed = _grads(timer, steps=3)
    plain = _grads(None, steps=3)
    assert timer.calls == 3  # one bucket per backward for a model this small
    assert timer.seconds > 0.0
    assert len(timed) == len(plain) == 4
    for a, b in zip(timed, plain, strict=True):
        assert torch.equal(a, b)


def test_first_step_is_stamped_once_and_only_inside_the_block() -> None:
    weight = nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    marks: dict[str, float] = {}

    def step() -> None:
        optimizer.zero_grad()
        weight.sum().backward()
        optimizer.step()

    step()  # before the block: not this worker's training
    assert marks == {}
    with _first_step(marks):
        step()
        first = marks["first_step"]
        step()
    assert marks["first_step"] == first
    marks.clear()
    step()  # the hook is gone after the block
    assert marks == {}
