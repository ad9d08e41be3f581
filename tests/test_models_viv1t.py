"""ViV1T (sensorium_models/models/viv1t.py, viv1t_readout.py): sizes at the real neuron counts,
the blocks against references written from the published formulas, shapes of whole trials,
whole-trial prediction and ensembling, and the errors of bad input."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sensorium_data as sd
import sensorium_models as sm
from sensorium_models.models import viv1t, viv1t_readout

RNG = np.random.default_rng(0)
MICE = {"A": sm.MouseSpec(n_neurons=6, coords=RNG.normal(size=(6, 2)))}
# The real tubelets and frames, narrow tokens and one block of each kind: seconds on a CPU.
TINY = {"embed_dim": 8, "heads": 2, "head_dim": 4, "mlp_dim": 8, "spatial_depth": 1,
        "temporal_depth": 1}


def tiny(**extra: object) -> sm.models.VideoEncoder:
    torch.manual_seed(0)
    return sm.create_model("viv1t", mice=MICE, in_channels=5, **{**TINY, **extra})


def clip(frames: int, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 5, frames, 36, 64, generator=g), torch.randn(batch, 4, frames,
                                                                           generator=g)


def real_mice() -> dict[str, sm.MouseSpec]:
    """The ten 2023 mice at their catalog neuron counts (coordinates do not change sizes)."""
    return {r.letter: sm.MouseSpec(n_neurons=r.n_neurons, coords=np.zeros((r.n_neurons, 2)))
            for r in sd.catalog.recordings("2023")}


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_parameters_at_the_real_neuron_counts_match_the_original(positions: str) -> None:
    mice = real_mice()
    assert sum(s.n_neurons for s in mice.values()) == 78_853
    with torch.device("meta"):
        model = sm.create_model("viv1t", mice=mice, in_channels=5, temporal_positions=positions)

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    core, readouts = count(model.core), count(model.readouts)
    assert model.shifters is not None and count(model.shifters) == 570
    # the notes' counts of the original's code: 12.28 M = core 2.92 M + readouts 9.36 M
    assert abs(core + readouts + 570 - 12.28e6) / 12.28e6 < 0.02
    assert abs(core - 2.92e6) / 2.92e6 < 0.02
    assert abs(readouts - 9.36e6) / 9.36e6 < 0.02
    table = 276 * 112 if positions == "learned" else 0  # (300 - 24) rows x 112
    assert core == 698_586 + 48_720 + table + 8 * 267_232  # tubelets, spatial table, blocks


def test_the_parallel_block_is_the_published_formula() -> None:
    config = viv1t.ViV1TConfig(embed_dim=12, heads=3, head_dim=5, mlp_dim=7)
    torch.manual_seed(1)
    block = viv1t.ParallelBlock(config).eval()
    with torch.no_grad():
        block.norm.weight.uniform_(0.5, 1.5)
        block.norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 9, 12)
    # the notes: h = LN(x); [q, k, v, m] = W h; out = x + W_o attn(q, k, v) + W_m GELU(m)
    h = F.layer_norm(x, (12,), block.norm.weight, block.norm.bias)
    q, k, v, m = (h @ block.fused.weight.T).split([15, 15, 15, 7], dim=-1)
    heads = []
    for i in range(3):
        qi, ki, vi = (a[..., 5 * i: 5 * (i + 1)] for a in (q, k, v))
        weights = torch.softmax(qi @ ki.transpose(1, 2) / math.sqrt(5), dim=-1)
        heads.append(weights @ vi)
    expected = (x + torch.cat(heads, -1) @ block.attention_out.weight.T
                + F.gelu(m) @ block.mlp_out.weight.T)
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
    assert block.fused.weight.shape == (3 * 15 + 7, 12) and block.fused.bias is None


def test_the_tubelets_are_layernorm_linear_layernorm_of_each_tubelet() -> None:
    config = viv1t.ViV1TConfig(tubelet_frames=3, tubelet_size=5, height=11, width=14,
                               embed_dim=6, patch_dropout=0.0)
    torch.manual_seed(2)
    tubelets = viv1t.Tubelets(2, config).eval()
    with torch.no_grad():
        for norm in (tubelets.input_norm, tubelets.output_norm):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
        tubelets.project.bias.uniform_(-1, 1)
    x = torch.randn(2, 2, 7, 11, 14) * 3 + 1
    # the explicit way: unfold (C, t, k, k) tubelets at stride (1, 2, 2), then the layers
    patches = x.unfold(2, 3, 1).unfold(3, 5, 2).unfold(4, 5, 2)  # (B, C, T', H', W', t, k, k)
    patches = patches.permute(0, 2, 3, 4, 1, 5, 6, 7).reshape(2, 5, 4, 5, -1)
    expected = tubelets.output_norm(tubelets.project(tubelets.input_norm(patches)))
    with torch.no_grad():
        torch.testing.assert_close(tubelets(x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("frames", [140, 300])
def test_tokens_and_outputs_of_clips_and_whole_trials_at_published_width(frames: int) -> None:
    mice = {"F": sm.MouseSpec(n_neurons=7863, coords=np.zeros((7863, 2)))}
    with torch.device("meta"):  # shapes only: the published model, no memory, no compute
        model = sm.create_model("viv1t", mice=mice, in_channels=5,
                                temporal_positions="learned").eval()
        videos, behavior = torch.empty(2, 5, frames, 36, 64), torch.empty(2, 4, frames)
        tokens = model.core.tubelets(videos)
        features = model.core(videos)
        out = model(videos, mouse="F", behavior=behavior)
    assert tokens.shape == (2, frames - 24, 15, 29, 112)  # 435 spatial tokens per time step
    assert features.shape == (2, 112, frames - 24, 15, 29)
    assert out.shape == (2, 7863, frames - 24)


def test_forward_and_backward_reach_every_part() -> None:
    model = tiny(temporal_positions="learned")
    videos, behavior = clip(30, batch=2)
    out = model(videos, mouse="A", behavior=behavior)
    assert out.shape == (2, 6, 6) and bool((out > 0).all())
    out.sum().backward()
    core = model.core
    for name, param in model.named_parameters():
        if name == "core.temporal_table":  # 6 output frames train its first 6 rows only
            assert param.grad is not None
            assert bool((param.grad[:6].abs().sum(1) > 0).all())
            assert bool((param.grad[6:] == 0).all())
            continue
        if name.startswith(("shifters.A.mlp.0", "shifters.A.mlp.2")):
            continue  # behind the shifter's last layer, which starts at zero
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert core.temporal_table is not None and core.temporal_table.shape == (276, 8)


def test_the_clean_positions_have_no_table_and_take_any_length() -> None:
    model = tiny().eval()
    assert model.core.temporal_table is None
    videos, behavior = clip(302)
    with torch.no_grad():
        assert model(videos, mouse="A", behavior=behavior).shape == (1, 6, 278)
    positions = viv1t.sinusoidal(5, 8, torch.device("cpu"))
    torch.testing.assert_close(positions[:, 0], torch.sin(torch.arange(5.0)))
    torch.testing.assert_close(positions[:, 1], torch.cos(torch.arange(5.0)))


def test_outputs_are_end_aligned_and_the_last_frame_sees_its_tubelet() -> None:
    model = tiny().eval()
    videos, behavior = clip(40)
    changed = videos.clone()
    changed[:, :, :5] += 1  # only the first tubelet reads frames 0-4
    with torch.no_grad():
        a = model(videos, mouse="A", behavior=behavior)
        b = model(changed, mouse="A", behavior=behavior)
    assert a.shape == (1, 6, 16) and model.burn_in == 24
    # attention spans the whole clip: a change early in the clip reaches every output frame
    assert bool((a != b).all())


def test_the_state_encoder_reads_dilation_and_running() -> None:
    model = tiny().eval()
    videos, behavior = clip(30)
    moved = behavior.clone()
    moved[:, :2] += 1.0  # dilation and running: not the shifter's input, the state encoder's
    with torch.no_grad():
        a = model(videos[:, :, :], mouse="A", behavior=behavior)
        b = model(videos, mouse="A", behavior=moved)
    assert not torch.allclose(a, b)
    readout = model.readouts["A"]
    assert isinstance(readout, viv1t_readout.StateGaussianReadout)
    assert readout.state_encoder[0].weight.shape == (8, 4)


@pytest.mark.parametrize("output", ["exp", "elu1"])
def test_the_output_activation_is_a_config_value(output: str) -> None:
    model = tiny(output=output).eval()
    videos, behavior = clip(26)
    with torch.no_grad():
        features = model.core(videos)
        drive = model.readouts["A"](features, model.shifters["A"](behavior[:, 2:4, -2:]),
                                    behavior[:, :, -2:])
        out = model(videos, mouse="A", behavior=behavior)
    expected = torch.exp(drive) if output == "exp" else F.elu(drive) + 1
    torch.testing.assert_close(out, expected)
    assert sm.model_config("viv1t").output == "exp"


def test_a_clip_shorter_than_a_tubelet_is_named() -> None:
    model = tiny()
    videos, behavior = clip(24)
    with pytest.raises(ValueError, match=r"videos have 24 frames; this model needs at least 25"):
        model(videos, mouse="A", behavior=behavior)
    with pytest.raises(ValueError, match=r"a clip of 24 frames is shorter than one tubelet "
                                         r"\(tubelet_frames=25\); pass at least 25 frames"):
        model.core(videos)


def test_bad_options_and_inputs_name_the_choices() -> None:
    with pytest.raises(ValueError, match=r"temporal_positions='fixed'; choose 'sinusoidal' "
                                         r"\(clean.*or 'learned' \(faithful"):
        tiny(temporal_positions="fixed")
    with pytest.raises(ValueError, match=r"output='relu'; choose one of elu1, exp, softplus"):
        tiny(output="relu")
    with pytest.raises(ValueError, match=r"attention_dropout=1.0; a dropout rate must lie in"):
        tiny(attention_dropout=1.0)
    model = tiny(temporal_positions="learned")
    videos, behavior = clip(301)
    with pytest.raises(ValueError, match=r"301 frames is longer than max_frames=300.*"
                                         r"temporal_positions='sinusoidal'"):
        model(videos, mouse="A", behavior=behavior)
    with pytest.raises(ValueError, match=r"frames of 36 x 60 pixels; this core was built for "
                                         r"36 x 64"):
        model.core(torch.randn(1, 5, 30, 36, 60))
    with pytest.raises(ValueError, match=r"the state encoder reads behaviour of shape .*got "
                                         r"None. Pass behavior="):
        model(videos[:, :, :30], mouse="A")


def test_whole_trials_of_300_frames_predict_one_length_at_a_time(make_tree, tmp_path) -> None:
    tree = make_tree(frames=300, n_neurons=6, junk=False)
    ds = sd.open_mouse(sd.convert(tree, tmp_path / "toy.zarr", progress=False))
    name = str(ds.attrs["mouse"])
    torch.manual_seed(0)
    model = sm.create_model("viv1t", mice=sm.mouse_specs({name: ds}), in_channels=5,
                            **{**TINY, "embed_dim": 4, "heads": 1, "mlp_dim": 4}).eval()
    # raw values: the tiny tree's per-pixel statistics have zero stds (inf after scaling)
    predicted = sm.predict(model, ds, tiers="oracle", batch_size=8, device="cpu",
                           normalize=None, pupil_channels=True)[name]
    n_frames = ds["n_frames"].sel(trial=predicted.trial).values
    assert set(n_frames) == {297, 300}  # trials of two lengths share a batch
    for row, n in zip(predicted.values, n_frames, strict=True):
        assert np.isnan(row[:, :24]).all() and np.isnan(row[:, n:]).all()
        assert np.isfinite(row[:, 24:n]).all()
    # attention looks ahead: a trial padded to a longer neighbour would change; none is
    short = int(np.flatnonzero(n_frames == 297)[0])
    item = sd.TrialDataset(ds, tier="oracle", normalize=None, pupil_channels=True)[short]
    assert int(item["length"]) == 297
    with torch.no_grad():
        alone = model(item["videos"][None], mouse=name, behavior=item["behavior"][None])
    np.testing.assert_allclose(predicted.values[short, :, 24:297], alone[0].numpy(), rtol=1e-5,
                               atol=1e-6)


def test_five_seeds_predict_as_their_ensemble() -> None:
    members = [tiny() for _ in range(2)]
    for seed, member in enumerate(members):
        torch.manual_seed(seed)
        member.readouts["A"].bias.data.normal_()
    ensemble = sm.Ensemble(members).eval()
    videos, behavior = clip(30)
    with torch.no_grad():
        expected = sum(m.eval()(videos, mouse="A", behavior=behavior) for m in members) / 2
        torch.testing.assert_close(ensemble(videos, mouse="A", behavior=behavior), expected)


def test_the_recipe_names_config_keys() -> None:
    pending = {"optimizer", "readout_lr", "readout_weight_decay", "schedule", "mixed_mice",
               "cutmix", "ema", "precision", "accumulate"}  # the trainer's general options
    keys = set(sm.TrainConfig().to_dict())
    assert set(viv1t.RECIPE) <= keys | pending
    known = {k: v for k, v in viv1t.RECIPE.items() if k in keys}
    config = sm.TrainConfig.from_dict(known)
    assert (config.frames, config.loss, config.lr_decay_steps) == (140, "poisson_correlation", 3)


def test_it_trains_one_epoch_with_the_trainer(simulated_stores, tmp_path) -> None:
    config = sm.TrainConfig(
        model="viv1t", mice=tuple(str(s) for s in simulated_stores[:2]), frames=30,
        batch_size=4, max_epochs=1, loss="poisson_correlation", pupil_channels=True,
        model_config=TINY, device="cpu", progress=False, score=False, out=str(tmp_path / "run"),
    )
    run = sm.train(config)
    metrics = (run / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 2 and np.isfinite(float(metrics[1].split(",")[3]))
    model = sm.load_run(run)
    assert model.name == "viv1t" and model.in_channels == 5


@pytest.mark.parametrize("module", [viv1t, viv1t_readout])
def test_docstring_examples(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_the_faithful_video_normalization_divides_by_std_minus_mean(simulated_stores) -> None:
    from sensorium_data.loaders.normalize import scaling

    ds = sd.open_mouse(simulated_stores[0])
    sizes = {"n_neurons": ds.sizes["neuron"], "frames": ds.sizes["frame"], "height": 36,
             "width": 64, "name": "tiny"}
    stats = ds.sensorium.statistics
    clean, faithful = (scaling(stats, mode, **sizes) for mode in ("official", "official_viv1t"))
    mean, std = (stats["videos"].sel(statistic=s).values[: len(clean.video_mean)]
                 for s in ("mean", "std"))
    covered = slice(0, min(len(mean), 100))
    divisor = std[covered] - mean[covered]
    # floored by its size at 1 % of the mean size (sign kept), as every scale is
    floor = 0.01 * np.abs(divisor).mean()
    kept = np.abs(divisor) > floor
    assert kept.mean() > 0.99
    np.testing.assert_allclose(1 / faithful.video_scale[covered][kept], divisor[kept],
                               rtol=1e-4, atol=1e-3)
    small = faithful.video_scale[covered][~kept]  # never the huge 1 / (std - mean) near 0
    assert np.isfinite(small).all() and (np.abs(small) <= np.abs(1 / divisor[~kept])).all()
    np.testing.assert_allclose(1 / clean.video_scale[covered], std[covered], rtol=1e-4)
    for name in ("video_mean", "behavior_mean", "behavior_scale", "precision"):
        np.testing.assert_array_equal(getattr(clean, name), getattr(faithful, name))
    item = sd.TrialDataset(ds, tier="oracle", normalize="official_viv1t")[0]
    assert np.isfinite(item["videos"].numpy()).all()
    with pytest.raises(sm.ConfigError, match=r"normalize='viv1t'; choose one of \['official', "
                                             r"'per_neuron', 'official_viv1t', 'none'\]"):
        sm.TrainConfig(normalize="viv1t")


def test_untrained_rows_of_the_learned_table_only_decay() -> None:
    model = tiny(temporal_positions="learned")
    table = model.core.temporal_table
    assert table is not None
    before = table.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.5)
    videos, behavior = clip(30)  # 6 time tokens: rows 0-5
    model(videos, mouse="A", behavior=behavior).sum().backward()
    optimizer.step()
    torch.testing.assert_close(table.detach()[6:], before[6:] * (1 - 0.01 * 0.5))
    assert not torch.allclose(table.detach()[:6], before[:6] * (1 - 0.01 * 0.5))
