"""DwiseNeuro: its size and cost at the published width, the sliding-window inference of
whole trials checked against windows run one by one, and its bad input."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import sensorium_models as sm
from sensorium_models.models import dwiseneuro, pooled_readout
from sensorium_models.models.dwiseneuro import window_ends, window_slots
from sensorium_models.training.predict import whole_trials

# The ten 2023 mice's neuron counts (notes: winning_models.md section 0), scored ones first.
NEURONS = (7863, 7908, 8202, 7939, 8122, 7440, 7928, 8285, 7671, 7495)
TINY = {"stem_channels": 4, "channels": (4, 8), "strides": (2, 2), "expansion": 2,
        "se_reduction": 2, "cortex": (8, 16), "window": 4, "frame_step": 2}
MICE = {"A": sm.MouseSpec(n_neurons=5, coords=np.zeros((5, 2))),
        "B": sm.MouseSpec(n_neurons=3, coords=np.zeros((3, 2)))}


def tiny(**extra) -> sm.models.VideoEncoder:
    torch.manual_seed(0)
    return sm.create_model("dwiseneuro", mice=MICE, in_channels=5, **{**TINY, **extra}).eval()


def ten_mice() -> dict[str, sm.MouseSpec]:
    return {f"m{i}": sm.MouseSpec(n_neurons=n, coords=np.zeros((n, 2)))
            for i, n in enumerate(NEURONS)}


def millions(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


@pytest.mark.parametrize(("name", "core", "total"), [("dwiseneuro", 3.67, 170.66),
                                                       ("dwiseneuro_distilled", 3.07, 170.06)])
def test_parameters_at_the_ten_mice_match_the_notes(name, core, total):
    with torch.device("meta"):
        model = sm.create_model(name, mice=ten_mice(), in_channels=5)
    cortex = millions(model.core.cortex)
    assert millions(model.core) - cortex == pytest.approx(core, rel=0.02)
    assert cortex == pytest.approx(5.40, rel=0.02)
    assert millions(model.readouts) == pytest.approx(161.58, rel=0.02)
    assert millions(model) == pytest.approx(total, rel=0.02)


def test_flops_per_clip_with_one_readout_match_the_notes():
    with torch.device("meta"):
        model = sm.create_model("dwiseneuro", mice={"F": ten_mice()["m0"]}, in_channels=5)
        clip = torch.empty(1, 5, 16, 64, 64)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model.eval()(clip, mouse="F")
    assert out.shape == (1, 7863, 16)
    assert counter.get_total_flops() / 1e9 == pytest.approx(29.2, rel=0.02)


def test_window_slots_by_hand():
    # window 3 at step 2 (span 5) over 7 frames: windows end at 4, 5, 6 and hold
    # {0, 2, 4}, {1, 3, 5}, {2, 4, 6}
    index, slot, valid = window_slots(7, 3, 2)
    assert valid.sum(1).tolist() == [1, 1, 2, 1, 2, 1, 1]
    assert [index[t][valid[t]].tolist() for t in range(7)] == [
        [0], [1], [2, 0], [1], [2, 0], [1], [2]]
    assert [slot[t][valid[t]].tolist() for t in range(7)] == [
        [0], [0], [0, 1], [1], [1, 2], [2], [2]]


@pytest.mark.parametrize("window_batch", [1, 3, 64])
def test_a_whole_trial_is_the_mean_of_its_windows_run_one_by_one(window_batch):
    model = tiny(window_batch=window_batch)
    g = torch.Generator().manual_seed(1)
    trial = torch.randn(2, 5, 11, 36, 64, generator=g)  # span 7: windows end at 6..10
    with torch.no_grad():
        out = model(trial, mouse="A")  # (2, 5, 11)
        sums, counts = torch.zeros(2, 5, 11), torch.zeros(11)
        for end in range(6, 11):
            frames = list(range(end - 6, end + 1, 2))  # 4 frames at step 2
            sums[..., frames] += model(trial[:, :, frames], mouse="A")
            counts[frames] += 1
    assert counts.tolist() == [1, 1, 2, 2, 3, 2, 3, 2, 2, 1, 1]
    torch.testing.assert_close(out, sums / counts, rtol=1e-5, atol=1e-5)


def test_a_window_stride_averages_fewer_windows_and_covers_every_frame():
    model = tiny(window_stride=5)  # span 7: groups of 2 windows every 5 frames
    trial = torch.randn(1, 5, 20, 36, 64, generator=torch.Generator().manual_seed(3))
    ends = window_ends(20, 4, 2, stride=5).tolist()
    assert ends == [6, 7, 11, 12, 16, 17, 18, 19]
    with torch.no_grad():
        out = model(trial, mouse="A")
        sums, counts = torch.zeros(1, 5, 20), torch.zeros(20)
        for end in ends:
            frames = list(range(end - 6, end + 1, 2))
            sums[..., frames] += model(trial[:, :, frames], mouse="A")
            counts[frames] += 1
    assert bool((counts > 0).all())
    torch.testing.assert_close(out, sums / counts, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"window_stride=7; at most span - 1 = 6"):
        tiny(window_stride=7)


def test_padding_of_a_shorter_trial_does_not_change_its_prediction():
    model = tiny()
    g = torch.Generator().manual_seed(2)
    trials = torch.randn(2, 5, 12, 36, 64, generator=g)
    trials[1, :, 9:] = 0  # trial 1 has 9 frames; collate pads the rest with zeros
    batch = {"videos": trials, "behavior": torch.zeros(2, 4, 12), "mouse": "A",
             "length": torch.tensor([12, 9])}
    aligned = whole_trials(model, batch, torch.device("cpu"))  # (2, 5, 12)
    with torch.no_grad():
        alone = model(trials[1:, :, :9], mouse="A")
    np.testing.assert_allclose(aligned[1, :, :9], alone[0].numpy(), rtol=1e-5, atol=1e-6)
    assert np.isnan(aligned[1, :, 9:]).all() and not np.isnan(aligned[0]).any()


def test_clips_train_every_part_and_drop_differently():
    model = tiny().train()
    clip = torch.randn(3, 5, 4, 64, 64)
    first = model(clip, mouse="B")
    assert first.shape == (3, 3, 4) and bool((first > 0).all())
    first.sum().backward()
    assert all(p.grad is not None for p in model.core.parameters())
    with torch.no_grad():
        assert not torch.equal(first, model(clip, mouse="B"))


def test_a_clip_between_window_and_whole_trial_is_refused():
    with pytest.raises(ValueError, match=r"videos have 6 frames: a clip has at most window=4 "
                                         r"frames \(at frame_step=2\), a whole trial at least 8.*"
                                         r"frames=4, frame_step=2"):
        tiny()(torch.randn(1, 5, 6, 36, 64), mouse="A")


@pytest.mark.parametrize(("option", "match"), [
    ({"output": "softplus"}, r"output='softplus'; DwiseNeuro needs output='identity'"),
    ({"shifter": True}, r"shifter=True; DwiseNeuro needs shifter=False"),
    ({"readout": "gaussian"}, r"readout='gaussian'; DwiseNeuro needs readout='pooled'"),
    ({"temporal_kernel": 4}, r"temporal_kernel=4: kernels must be odd"),
    ({"cortex": (8, 15)}, r"cortex widths \(8, 8, 15\) must be multiples of cortex_groups=2"),
    ({"drop_path": 1.0}, r"drop_path=1.0; a drop rate must lie in \[0, 1\)"),
    ({"strides": (2,)}, r"one entry per block"),
])
def test_bad_options_name_the_fix(option, match):
    with pytest.raises(ValueError, match=match):
        tiny(**option)


def test_the_pooled_readout_needs_dwiseneuro():
    with pytest.raises(ValueError, match=r"readout='pooled' needs a core that pools space.*"
                                         r"LNConfig has none\. Use readout='gaussian'"):
        sm.create_model("ln", mice=MICE, readout="pooled", output="identity", shifter=False)


@pytest.mark.parametrize("module", [dwiseneuro, pooled_readout])
def test_docstring_examples(module):
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0


@pytest.mark.parametrize("name", ["dwiseneuro", "dwiseneuro_distilled"])
def test_the_recipe_files_hold_config_keys(name):
    import tomllib
    from pathlib import Path

    from sensorium_models.training.config import valid_keys

    path = Path(__file__).resolve().parents[1] / "docs" / "recipes" / f"{name}.toml"
    values = tomllib.loads(path.read_text())
    assert not set(values) - set(valid_keys())
    config = sm.TrainConfig.from_dict(values)
    assert (config.model, config.frames, config.frame_step, config.canvas) == (name, 16, 2, 64)
    model = sm.model_config(name)
    assert (model.window, model.frame_step) == (config.frames, config.frame_step)


def test_the_pooled_readout_starts_at_the_mean_responses():
    from sensorium_models.models.pooled_readout import PooledReadout

    mean = np.array([0.02, 0.6, 3.0, 40.0, 0.6])
    readout = PooledReadout(8, 5, groups=2, dropout=0.0, beta=0.07, window=4, frame_step=2,
                            mean_response=mean).eval()
    out = readout(torch.zeros(1, 8, 3, 1, 1))  # no drive: the biases alone
    np.testing.assert_allclose(out[0, :, 0].detach().numpy(), mean, rtol=1e-4)
    plain = PooledReadout(8, 5, groups=2, dropout=0.0, beta=0.07, window=4, frame_step=2)
    assert float(plain(torch.zeros(1, 8, 3, 1, 1)).mean()) == pytest.approx(np.log(2) / 0.07)
