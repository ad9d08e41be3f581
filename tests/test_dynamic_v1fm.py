"""Dynamic-V1FM: its size at the real neuron counts, the windows of a long clip, the
hierarchical readout's levels and fusions, mixed precision and compilation, and bad input."""

from __future__ import annotations

import dataclasses
import doctest

import numpy as np
import pytest
import torch

import sensorium_models as sm
from sensorium_data.catalog import recordings
from sensorium_models.models import dynamic_v1fm, hierarchical_gaussian, windows
from sensorium_models.models.hierarchical_gaussian import (
    COMBINATIONS,
    HierarchicalGaussianReadout,
)

RNG = np.random.default_rng(0)
MICE = {"A": sm.MouseSpec(n_neurons=40, coords=RNG.normal(size=(40, 2)) * 100)}
TINY = {"emb_dim": 8, "num_heads": 2, "mlp_dim": 8, "num_blocks": 2}


def tiny(**options) -> sm.models.VideoEncoder:
    torch.manual_seed(0)
    return sm.create_model("dynamic_v1fm", mice=MICE, in_channels=5, **{**TINY, **options})


def clip(frames: int, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    behavior = torch.randn(batch, 4, frames, generator=g)
    video = torch.randn(batch, 1, frames, 36, 64, generator=g)
    # the loader's layout: the video, then the behaviour variables as constant channels
    channels = behavior[:, :, :, None, None].expand(-1, -1, -1, 36, 64)
    return torch.cat([video, channels], dim=1), behavior


def test_size_at_the_real_neuron_counts_matches_the_notes():
    # notes/winning_models.md 2.5: core 2.27 M, readouts 34.63 M, total 36.9 M (ten mice)
    mice = {r.short_name: sm.MouseSpec(n_neurons=r.n_neurons, coords=np.zeros((r.n_neurons, 2)))
            for r in recordings("2023")}
    assert sum(s.n_neurons for s in mice.values()) == 78_853
    with torch.device("meta"):
        model = sm.create_model("dynamic_v1fm", mice=mice, in_channels=5)

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    assert count(model.core) == pytest.approx(2.27e6, rel=0.02)
    assert count(model.readouts) == pytest.approx(34.63e6, rel=0.02)
    assert count(model) == pytest.approx(36.9e6, rel=0.02)
    assert count(model.shifters["29515-10-12"]) == 2 * 16 + 16 + 16 * 16 + 16 + 16 * 2 + 2


def test_windows_of_a_long_clip_by_hand():
    # T = 40: window 0 keeps frames 15-29; the tail window (10-39) keeps its last 10, 30-39
    assert windows.window_starts(40, 30, 15) == [0, 10]
    assert windows.window_starts(30, 30, 15) == [0]
    assert windows.window_starts(45, 30, 15) == [0, 15]
    # the main track's 299 frames: windows every 15 frames up to 255, the tail at 269
    assert windows.window_starts(299, 30, 15) == [*range(0, 256, 15), 269]
    clip_ = torch.arange(40.0).view(1, 1, 40)
    split = windows.split_windows(clip_, 30, 15)  # (2, 1, 30)
    assert split[:, 0, 0].tolist() == [0.0, 10.0]
    # a "model" that answers each output with (its window, the frame it belongs to)
    which = torch.arange(2.0).view(2, 1, 1).expand(2, 1, 15)
    out = windows.merge_windows(torch.cat([which, split[..., 15:]], dim=1), 40, 30, 15)
    assert out[0, 1].tolist() == list(range(15, 40))
    assert out[0, 0].tolist() == [0.0] * 15 + [1.0] * 10
    with pytest.raises(ValueError, match=r"burn_in=30 with window=30"):
        windows.window_starts(40, 30, 30)


def test_a_long_clip_is_its_windows_stitched():
    model = tiny(fusion="adaptive").eval()
    videos, behavior = clip(40)
    with torch.no_grad():
        whole = model(videos, mouse="A", behavior=behavior)  # (2, 40, 25)
        first = model(videos[:, :, :30], mouse="A", behavior=behavior[:, :, :30])
        tail = model(videos[:, :, 10:], mouse="A", behavior=behavior[:, :, 10:])
    assert whole.shape == (2, 40, 25)
    torch.testing.assert_close(whole, torch.cat([first, tail[..., -10:]], dim=2))


def test_outputs_are_the_last_half_of_the_window_and_see_all_of_it():
    model = tiny().eval()
    videos, behavior = clip(30)
    with torch.no_grad():
        out = model(videos, mouse="A", behavior=behavior)
        for frame in (0, 29):  # burn-in frames are context: every output depends on them
            moved = videos.clone()
            moved[:, 0, frame] += 5.0
            assert (model(moved, mouse="A", behavior=behavior) - out).abs().amax() > 1e-6
        running = videos.clone()
        running[:, 2] += 3.0  # the running-speed channel feeds the behaviour MLPs
        assert (model(running, mouse="A", behavior=behavior) - out).abs().amax() > 1e-6
    assert out.shape == (2, 40, 15)
    plain = sm.create_model("dynamic_v1fm", mice=MICE, in_channels=1, **TINY)
    assert all(block.behavior is None for block in plain.core.blocks)
    assert plain(videos[:, :1], mouse="A").shape == (2, 40, 15)


def test_level_k_reads_every_kth_neuron_and_shares_it_over_k_neurons():
    readout = HierarchicalGaussianReadout(4, RNG.normal(size=(10, 2)), levels=(4,)).eval()
    # N = 10, level 4: 2 pseudo-neurons at neurons 0 and 5, each given to 5 neurons
    assert readout.pick4.tolist() == [0, 5]
    assert readout.spread4.tolist() == [0] * 5 + [1] * 5
    with torch.no_grad():
        readout.features.zero_()  # level 1 silent: the drive is level 4's, halved (mean)
        features = torch.randn(1, 4, 3, 5, 7)
        out = readout(features)  # (1, 10, 3)
        alone = readout.refine[0](
            torch.nn.functional.grid_sample(
                features.transpose(1, 2).reshape(3, 4, 5, 7),
                readout.mu[[0, 5]].expand(3, -1, -1).unsqueeze(2), align_corners=True,
            ).squeeze(-1).mul(readout.level_features[0]).sum(1).unsqueeze(-1)
        ).squeeze(-1)  # (3 frames, 2 pseudo-neurons)
    torch.testing.assert_close(out[0, :5], (alone[:, :1] / 2).T.expand(5, 3))
    torch.testing.assert_close(out[0, 5:], (alone[:, 1:] / 2).T.expand(5, 3))


def test_mean_fusion_is_the_mean_of_the_levels_and_adaptive_pools_per_window():
    coords = RNG.normal(size=(32, 2))
    torch.manual_seed(0)
    mean = HierarchicalGaussianReadout(4, coords, levels=(2, 16)).eval()
    only = HierarchicalGaussianReadout(4, coords, levels=()).eval()
    only.load_state_dict(mean.state_dict(), strict=False)
    features = torch.randn(2, 4, 25, 5, 7)
    with torch.no_grad():
        for p in mean.level_features:
            p.zero_()  # levels 2 and 16 read 0, and give what their refinement makes of 0
        constant = sum(refine(torch.zeros(1, 1)) for refine in mean.refine)
        torch.testing.assert_close(mean(features), (only(features) + constant) / 3)
        adaptive = HierarchicalGaussianReadout(4, coords, levels=(2, 16), fusion="adaptive")
        adaptive.eval()
        whole = adaptive(features)  # 25 frames: windows 0-14 and 10-24 (its last 10)
        parts = [adaptive(features[:, :, :15]), adaptive(features[:, :, 10:])[..., -10:]]
    torch.testing.assert_close(whole, torch.cat(parts, dim=2))
    assert sum(p.numel() for p in adaptive.fuse.parameters()) == 2 * (3 * 3 + 3)


@pytest.mark.parametrize("fusion", ["mean", "adaptive"])
def test_every_level_combination_builds_and_trains(fusion):
    assert len(COMBINATIONS) == 16 and COMBINATIONS[:2] == ("0", "2_4_8_16")
    features = torch.randn(1, 4, 15, 5, 7)
    for levels in COMBINATIONS:
        spec = sm.MouseSpec(n_neurons=40, coords=RNG.normal(size=(40, 2)))
        config = sm.model_config("dynamic_v1fm")
        config = dataclasses.replace(config, levels=levels, fusion=fusion)
        readout = hierarchical_gaussian.hierarchical_gaussian(4, spec, config)
        readout(features, torch.zeros(1, 15, 2)).sum().backward()
        assert len(readout.level_features) == len(levels.split("_")) - (levels == "0")
        assert all(p.grad is not None for p in readout.parameters())


def test_bf16_autocast_on_the_cpu():
    model = tiny().eval()
    videos, behavior = clip(30)
    with torch.no_grad():
        exact = model(videos, mouse="A", behavior=behavior)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(videos, mouse="A", behavior=behavior)
    assert half.shape == exact.shape and bool(torch.isfinite(half).all())
    torch.testing.assert_close(half.float(), exact, rtol=0.05, atol=0.05)


@pytest.mark.slow
def test_torch_compile_on_the_cpu():
    model = tiny(num_blocks=1).eval()
    videos, behavior = clip(30, batch=1)
    compiled = torch.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(compiled(videos, mouse="A", behavior=behavior),
                                   model(videos, mouse="A", behavior=behavior),
                                   rtol=1e-4, atol=1e-4)


def test_bad_input_names_the_choices():
    with pytest.raises(ValueError, match=r"levels='2_3' is not a level combination; choose one "
                                         r"of 0, 2_4_8_16, .*, 16 \(levels 2, 4, 8, 16 joined"):
        tiny(levels="2_3")
    with pytest.raises(ValueError, match=r"levels='8_2' is not a level combination"):
        tiny(levels="8_2")
    with pytest.raises(ValueError, match=r"fusion='max'; choose one of mean, adaptive"):
        tiny(fusion="max")
    model = tiny()
    with pytest.raises(ValueError, match=r"a clip of 20 frames is shorter than the model's "
                                         r"window of 30 \(15 frames of burn-in.*at least 30"):
        model(*clip(20)[:1], mouse="A")
    with pytest.raises(ValueError, match=r"videos have 12 frames; this model needs at least 16"):
        model(*clip(12)[:1], mouse="A")
    holes = RNG.normal(size=(40, 2))
    holes[3] = np.nan
    with pytest.raises(ValueError, match=r"1 of 40 neurons have no cortical coordinates.*"
                                         r"cell_motor_coordinates"):
        sm.create_model("dynamic_v1fm", mice={"A": sm.MouseSpec(40, holes)}, **TINY)
    with pytest.raises(ValueError, match=r"readout='hierarchical_gaussian' needs the options "
                                         r"levels and fusion, which LNConfig does not have"):
        sm.create_model("ln", mice=MICE, readout="hierarchical_gaussian")
    with pytest.raises(ValueError, match=r"shift_size=\(4, 7, 3\) with window_size=\(8, 7, 7\)"):
        tiny(shift_size=(4, 7, 3))
    with pytest.raises(ValueError, match=r"emb_dim=10 must divide by num_heads=4"):
        tiny(emb_dim=10, num_heads=4)
    with pytest.raises(ValueError, match=r"window=31 frames; it must be a multiple of "
                                         r"patch_size\[0\]=2"):
        tiny(window=31)


def test_the_recipe_uses_the_trainer_keys():
    recipe = dynamic_v1fm.RECIPE
    assert recipe["frames"] - sm.model_config("dynamic_v1fm").window // 2 == 15
    assert {"optimizer", "weight_decay", "schedule", "warmup_epochs", "constant_epochs",
            "min_lr", "mixed_mice", "cutmix", "ema", "precision", "accumulate"} <= set(recipe)
    assert (recipe["lr"], recipe["weight_decay"], recipe["min_lr"]) == (1e-3, 0.05, 1e-6)
    assert recipe["max_epochs"] - recipe["constant_epochs"] == 100


@pytest.mark.parametrize("module", [windows, hierarchical_gaussian, dynamic_v1fm])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
