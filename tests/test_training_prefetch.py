"""on_device: batches reach the device one ahead of the training (the CPU path of the code the
GPU runs; the copy stream itself needs CUDA)."""

from __future__ import annotations

import pytest
import torch

from sensorium_models.training.loop import on_device


def test_batches_come_in_order_one_drawn_ahead():
    drawn: list[int] = []

    def batches():
        for k in range(3):
            drawn.append(k)
            yield {"mouse": "A", "videos": torch.full((2, 3), float(k)),
                   "responses": [torch.ones(4, 2) * k, torch.zeros(5, 2)], "trial": k}

    seen = []
    for batch in on_device(batches(), torch.device("cpu")):
        k = batch["trial"]
        assert drawn == list(range(min(k + 2, 3)))  # the next batch is already on its way
        assert batch["videos"].device.type == "cpu" and batch["videos"].eq(k).all()
        assert batch["responses"][0].eq(k).all() and batch["mouse"] == "A"
        seen.append(k)
    assert seen == [0, 1, 2]
    assert list(on_device([], torch.device("cpu"))) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the copy stream needs CUDA")
def test_batches_are_copied_to_the_gpu_on_a_side_stream():
    device = torch.device("cuda")
    batches = [{"mouse": "A", "videos": torch.full((2, 3), float(k)).pin_memory()}
               for k in range(3)]
    got = [b["videos"] for b in on_device(batches, device)]
    assert all(t.device.type == "cuda" for t in got)
    assert [float(t[0, 0]) for t in got] == [0.0, 1.0, 2.0]
