"""MouseBatchSampler (per-mouse cycling, mixed, distributed shares) and collate."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

import sensorium_data as sd


class Groups:
    """A stand-in dataset: mice with given numbers of items, indexed one mouse after another."""

    def __init__(self, **sizes: int):
        bounds = np.cumsum([0, *sizes.values()])
        self.groups = {m: np.arange(a, b) for m, a, b in zip(sizes, bounds[:-1], bounds[1:],
                                                             strict=True)}

    def indices_by_mouse(self) -> dict[str, np.ndarray]:
        return self.groups

    def mouse(self, index: int) -> str:
        return next(m for m, ix in self.groups.items() if index in ix)


def test_per_mouse_batches_cycle_over_mice():
    data = Groups(A=20, B=9, C=5)
    sampler = sd.MouseBatchSampler(data, 4, seed=1)
    batches = list(sampler)
    # the largest mouse sets the epoch: ceil(20 / 4) = 5 steps of one batch per mouse
    assert len(batches) == len(sampler) == 15
    mice = [{data.mouse(i) for i in b} for b in batches]
    assert all(len(m) == 1 for m in mice)
    assert [m.pop() for m in mice] == ["A", "B", "C"] * 5
    a = [i for b in batches[0::3] for i in b]
    assert sorted(a) == list(range(20))  # A: every trial once
    b = [i for b in batches[1::3] for i in b]
    counts = Counter(b)
    assert set(counts) == set(range(20, 29)) and max(counts.values()) <= 2  # B: cycled
    c_passes = [i for b in batches[2::3] for i in b]
    assert sorted(c_passes[:5]) == list(range(29, 34))  # each pass of C is a full shuffle


def test_shuffles_are_seeded_and_follow_the_epoch():
    data = Groups(A=30, B=12)
    first = list(sd.MouseBatchSampler(data, 5, seed=3))
    assert first == list(sd.MouseBatchSampler(data, 5, seed=3))
    assert first != list(sd.MouseBatchSampler(data, 5, seed=4))
    sampler = sd.MouseBatchSampler(data, 5, seed=3)
    sampler.set_epoch(1)
    assert list(sampler) != first
    ordered = list(sd.MouseBatchSampler(data, 5, shuffle=False))
    assert ordered[0] == [0, 1, 2, 3, 4] and ordered[1] == [30, 31, 32, 33, 34]


def test_drop_last():
    data = Groups(A=11, B=7)
    batches = list(sd.MouseBatchSampler(data, 4, drop_last=True))
    assert all(len(b) == 4 for b in batches) and len(batches) == 4
    kept = list(sd.MouseBatchSampler(data, 4))
    assert [len(b) for b in kept] == [4, 4, 4, 3, 3, 4]
    with pytest.raises(ValueError, match=r"\['B'\] would get no batch: 7 items over 1 rank\(s\) is "
                                         r"fewer than batch_size=8 per rank with drop_last=True"):
        sd.MouseBatchSampler(data, 8, drop_last=True)


@pytest.mark.parametrize("mode", ["per_mouse", "mixed"])
def test_ranks_partition_each_pass_without_overlap(mode):
    data = Groups(A=24, B=12, C=36)
    ranks = [sd.MouseBatchSampler(data, 3, mode=mode, seed=9, num_replicas=3, rank=r)
             for r in range(3)]
    for s in ranks:
        s.set_epoch(2)
    runs = [list(s) for s in ranks]
    assert len({len(r) for r in runs}) == 1 and len(runs[0]) == len(ranks[0])
    if mode == "per_mouse":  # the same mouse at the same step on every rank
        for step in zip(*runs, strict=True):
            assert len({data.mouse(b[0]) for b in step}) == 1
        largest = [i for r in runs for b in r for i in b if data.mouse(i) == "C"]
        assert sorted(largest) == list(range(36, 72))  # C's one pass split, no overlap
    else:
        seen = [i for r in runs for b in r for i in b]
        assert sorted(seen) == list(range(72))  # each item once, on one rank
        assert any(len({data.mouse(i) for i in b}) > 1 for b in runs[0])


def test_uneven_ranks_pad_like_distributed_sampler():
    data = Groups(A=10)
    runs = [list(sd.MouseBatchSampler(data, 2, num_replicas=3, rank=r)) for r in range(3)]
    seen = [i for r in runs for b in r for i in b]
    assert len(seen) == 12 and set(seen) == set(range(10))  # padded with 2 repeats


def test_bad_sampler_arguments():
    data = Groups(A=4)
    with pytest.raises(ValueError, match=r"unknown mode='by_mouse'; choose 'per_mouse' .* or "
                                         r"'mixed'"):
        sd.MouseBatchSampler(data, 2, mode="by_mouse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"rank=2 with num_replicas=2; the rank must be in 0\.\.1"):
        sd.MouseBatchSampler(data, 2, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match=r"batch_size=0; pass a positive number"):
        sd.MouseBatchSampler(data, 0)


def item(mouse: str, frames: int, neurons: int = 5, trial: int = 0) -> dict:
    return {"videos": torch.rand(3, frames, 36, 64), "responses": torch.rand(neurons, frames),
            "behavior": torch.rand(4, frames), "mouse": mouse, "trial": trial, "start": 2}


def test_collate_stacks_and_pads():
    items = [item("A", 10, trial=1), item("A", 7, trial=2)]
    batch = sd.collate(items)
    assert batch["videos"].shape == (2, 3, 10, 36, 64)
    assert batch["responses"].shape == (2, 5, 10) and batch["behavior"].shape == (2, 4, 10)
    assert batch["mouse"] == "A"
    assert batch["trial"].tolist() == [1, 2] and batch["trial"].dtype == torch.long
    assert batch["start"].tolist() == [2, 2] and batch["length"].tolist() == [10, 7]
    assert torch.equal(batch["videos"][1, :, :7], items[1]["videos"])
    assert (batch["videos"][1, :, 7:] == 0).all() and (batch["behavior"][1, :, 7:] == 0).all()
    assert torch.isnan(batch["responses"][1, :, 7:]).all()
    assert torch.equal(batch["responses"][0], items[0]["responses"])


def test_collate_of_several_mice_lists_responses():
    items = [item("A", 6, neurons=5), item("B", 6, neurons=8)]
    batch = sd.collate(items)
    assert batch["mouse"] == ["A", "B"]
    assert [r.shape for r in batch["responses"]] == [(5, 6), (8, 6)]
    assert batch["videos"].shape == (2, 3, 6, 36, 64)
    with pytest.raises(ValueError, match="collate got no items"):
        sd.collate([])
