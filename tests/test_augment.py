"""CutMix within a mouse: boxes of a partner of the same mouse, in every channel and frame,
and targets mixed by the box's share of the frame."""

from __future__ import annotations

import torch

from sensorium_models.training.augment import cutmix, partners, random_box


def labelled_clips(n: int, channels: int = 5, frames: int = 3) -> torch.Tensor:
    """Clip b filled with the value b, so that every pixel tells whose it is."""
    return torch.arange(float(n)).reshape(n, 1, 1, 1, 1).expand(n, channels, frames, 36, 64)


def test_boxes_of_a_partner_of_the_same_mouse_in_every_channel_and_frame():
    g = torch.Generator().manual_seed(0)
    mice = ["A", "B", "A", "B", "A", "C"]
    videos = labelled_clips(6)
    responses = [torch.full((n, 3), float(b)) for b, n in enumerate([4, 7, 4, 7, 4, 2])]
    mixed, targets, boxes = cutmix(videos, responses, mice, p=1.0, generator=g)
    assert torch.equal(videos, labelled_clips(6))  # the inputs are left as they were
    assert boxes[5] is None  # C's only clip has no partner: unchanged
    torch.testing.assert_close(mixed[5], videos[5])
    for b, box in enumerate(boxes[:5]):
        assert box is not None
        inside = torch.zeros(36, 64, dtype=torch.bool)
        inside[box.top:box.bottom, box.left:box.right] = True
        frame = mixed[b]  # (C, F, H, W)
        partner = frame[..., inside].unique()
        assert len(partner) == 1 and mice[int(partner)] == mice[b] and int(partner) != b
        assert torch.all(frame[..., ~inside] == b)  # outside the box: its own clip
        a = box.share(36, 64)
        assert a == inside.float().mean()
        torch.testing.assert_close(targets[b], (1 - a) * responses[b] + a * responses[
            int(partner)])
    torch.testing.assert_close(targets[5], responses[5])


def test_probability_zero_changes_nothing_and_one_mouse_batches_mix_tensors():
    videos = labelled_clips(4)
    responses = torch.rand(4, 6, 3)
    mixed, targets, boxes = cutmix(videos, responses, "A", p=0.0)
    assert boxes == [None] * 4
    assert torch.equal(mixed, videos) and torch.equal(targets, responses)
    mixed, targets, boxes = cutmix(videos, responses, "A", p=1.0)
    assert isinstance(targets, torch.Tensor) and targets.shape == (4, 6, 3)
    assert all(b is not None for b in boxes) and not torch.equal(mixed, videos)


def test_about_half_the_clips_get_a_box_at_probability_half():
    g = torch.Generator().manual_seed(1)
    _, _, boxes = cutmix(labelled_clips(400, channels=1, frames=1), torch.rand(400, 2, 1),
                         "A", p=0.5, generator=g)
    assert 160 < sum(b is not None for b in boxes) < 240


def test_boxes_have_the_frames_proportions_and_a_uniform_area():
    g = torch.Generator().manual_seed(2)
    boxes = [random_box(36, 64, g) for _ in range(2000)]
    inner = [b for b in boxes if b.top > 0 and b.left > 0 and b.bottom < 36 and b.right < 64]
    assert len(inner) > 100
    for b in inner:  # sides sqrt(lam) of the frame's: the same fraction of height and width
        assert abs((b.bottom - b.top) / 36 - (b.right - b.left) / 64) <= 1 / 36 + 1 / 64
    shares = torch.tensor([b.share(36, 64) for b in boxes])
    assert shares.min() >= 0 and shares.max() <= 1
    assert 0.2 < float(shares.mean()) < 0.5  # lam ~ U(0, 1), less what the frame clips away


def test_partners_cycle_within_each_mouse():
    g = torch.Generator().manual_seed(3)
    mice = ["A", "B", "A", "B", "B", "C"]
    p = partners(mice, 6, g)
    assert p[5] == 5
    assert all(mice[p[i]] == mice[i] and p[i] != i for i in range(5))
    assert sorted(p[:5]) == [0, 1, 2, 3, 4]  # a permutation: every clip lends its box once
