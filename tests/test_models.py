"""The model zoo, driven by the registry: every registered model runs forward and backward on
tiny clips, and the registry, the full model and the ensemble reject bad input clearly."""

from __future__ import annotations

import dataclasses
import doctest

import numpy as np
import pytest
import torch

import sensorium_data as sd
import sensorium_models as sm
from sensorium_models.models import encoder, ensemble, ln, readout, registry, regularizers, specs

RNG = np.random.default_rng(0)
MICE = {
    "A": sm.MouseSpec(n_neurons=6, coords=RNG.normal(size=(6, 2)) * 100),
    "B": sm.MouseSpec(n_neurons=4, coords=RNG.normal(size=(4, 2)) * 100),
}
# Overrides that make each registered model cheap on a CPU; a model without an entry runs at
# its defaults.
SMALL = {
    "factorized_baseline": {"hidden_channels": (4, 4, 4)},
    "gru_baseline": {"channels": 2, "rotations": 4, "layers": 2, "input_kernel": 5,
                     "hidden_kernel": 3, "gru_channels": 4, "gru_input_kernel": 3,
                     "gru_rec_kernel": 3},
    "ln": {"channels": 2},
    "viv1t": {"tubelet_frames": 5, "embed_dim": 8, "heads": 2, "head_dim": 4, "mlp_dim": 8,
              "spatial_depth": 1, "temporal_depth": 1},
    "dynamic_v1fm": {"emb_dim": 8, "num_heads": 2, "mlp_dim": 8, "num_blocks": 1},
    "sota_2022": {"hidden_channels": 4},
    "ln_2022": {"hidden_channels": 4},
    "v1t": {"embed_dim": 8, "heads": 2, "mlp_dim": 8, "depth": 1, "patch_stride": 4,
            "core_l1": 1e-4},
}
TINY_DWISENEURO = {"stem_channels": 4, "channels": (4, 8), "strides": (2, 2), "expansion": 2,
                   "se_reduction": 2, "cortex": (8, 16), "window": 4, "window_batch": 8}
SMALL.update(dwiseneuro=TINY_DWISENEURO, dwiseneuro_distilled=TINY_DWISENEURO)
# Models whose only regularization is weight decay and dropout: their penalty is zero.
NO_PENALTY = {"dwiseneuro", "dwiseneuro_distilled", "dynamic_v1fm"}
# Models whose core has no penalty of its own (ViV1T regularises through weight decay only).
UNPENALISED_CORES = {"viv1t"}
BURN_IN = {"factorized_baseline": 18, "gru_baseline": 0, "ln": 10, "viv1t": 24,
           "dynamic_v1fm": 15, "sota_2022": 0, "ln_2022": 0, "v1t": 0}
# Clip length of the generic tests; a model that reads clips in fixed windows needs a window.
FRAMES = {"dynamic_v1fm": 30}
MODELS = sm.list_models()


def small(name: str, **extra) -> sm.models.VideoEncoder:
    torch.manual_seed(0)
    return sm.create_model(name, mice=MICE, **{**SMALL.get(name, {}), **extra})


def clip(frames: int = 24, batch: int = 2, channels: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    videos = torch.randn(batch, channels, frames, 36, 64, generator=g)
    return videos, torch.randn(batch, 4, frames, generator=g)


def test_the_baselines_are_registered():
    assert {"factorized_baseline", "gru_baseline", "ln"} <= set(MODELS)
    assert MODELS == sorted(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name):
    model = small(name)
    frames = FRAMES.get(name, 24)
    videos, behavior = clip(frames)
    out = model(videos, mouse="A", behavior=behavior)
    assert out.shape == (2, 6, frames - model.burn_in)
    assert bool((out > 0).all())
    (out.sum() + model.regularizer("A")).backward()
    shifters = [] if model.shifters is None else [model.shifters["A"]]
    for part in (model.core, model.readouts["A"], *shifters):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    assert all(p.grad is None for p in model.readouts["B"].parameters())


@pytest.mark.parametrize("name", MODELS)
def test_every_model_traces_under_torch_compile(name):
    # dynamo's front end on the CPU (backend "eager": no code generation), as compile=true
    # traces the model on a GPU; a graph dynamo cannot trace fails here, not on a GPU
    model = small(name, **({"levels": "2_4_8_16"} if name == "dynamic_v1fm" else {})).eval()
    videos, behavior = clip(FRAMES.get(name, 24))
    compiled = torch.compile(model, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(videos, mouse="A", behavior=behavior),
                                   model(videos, mouse="A", behavior=behavior))


@pytest.mark.parametrize("name", MODELS)
def test_defaults_give_the_documented_shapes(name):
    model = sm.create_model(name, mice=MICE).eval()
    assert model.burn_in == BURN_IN.get(name, model.burn_in)
    frames = max(model.burn_in + 2, FRAMES.get(name, 0))
    videos, behavior = clip(frames=frames, batch=1)
    with torch.no_grad():
        out = model(videos, mouse="B", behavior=behavior)
    assert out.shape == (1, 4, frames - model.burn_in)
    assert model.name == name and model.mice == ["A", "B"] and model.in_channels == 3
    assert model.config == sm.model_config(name)


@pytest.mark.parametrize("name", MODELS)
def test_eval_is_deterministic_and_training_samples_positions(name):
    model = small(name)
    videos, behavior = clip(FRAMES.get(name, 24))
    with torch.no_grad():
        model.train()
        first, second = (model(videos, mouse="A", behavior=behavior) for _ in range(2))
        assert not torch.equal(first, second)
        model.eval()
        first, second = (model(videos, mouse="A", behavior=behavior) for _ in range(2))
    torch.testing.assert_close(first, second, rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_regularizer_is_positive_and_differentiable(name):
    model = small(name)
    penalty = model.regularizer("A")
    if name in NO_PENALTY:
        assert penalty.ndim == 0 and float(penalty) == 0
        return
    if name in UNPENALISED_CORES:
        assert penalty.ndim == 0 and float(penalty.detach()) == 0
        model = small(name, feature_reg=0.1)
        penalty = model.regularizer("A")
        assert float(penalty.detach()) > 0
        penalty.backward()
        assert model.readouts["A"].features.grad is not None
        return
    assert penalty.ndim == 0 and float(penalty.detach()) > 0
    penalty.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.core.parameters())


def test_feature_regularizer_adds_the_l1_of_the_features():
    base, l1 = small("ln"), small("ln", feature_reg=0.5)
    features = l1.readouts["A"].features
    expected = base.regularizer("A") + 0.5 * features.abs().sum()
    torch.testing.assert_close(l1.regularizer("A"), expected)


def test_the_shifter_moves_the_readout_with_the_pupil():
    videos, behavior = clip()
    moved = behavior.clone()
    moved[:, 2:4] += 2.0
    for shifter, differs in ((True, True), (False, False)):
        model = small("ln", shifter=shifter).eval()
        with torch.no_grad():
            if shifter:  # as if trained: the shifter starts at zero shift
                model.shifters["A"].mlp[4].weight.normal_(0, 0.5)
            a = model(videos, mouse="A", behavior=behavior)
            b = model(videos, mouse="A", behavior=moved)
            c = model(videos, mouse="A", behavior=behavior + torch.tensor([1.0, 1, 0, 0])[:, None])
        assert (not torch.allclose(a, b)) is differs
        torch.testing.assert_close(a, c)  # dilation and running go in as channels, not here
    assert small("ln", shifter=False).shifters is None


def test_outputs_are_aligned_to_the_last_frames():
    model = small("ln").eval()  # output frame i sees input frames i .. i + burn_in
    videos, behavior = clip()
    with torch.no_grad():
        out = model(videos, mouse="A", behavior=behavior)
        for frame, first_changed in ((0, 0), (23, 13)):
            later = videos.clone()
            later[:, :, frame] += 5.0
            # (the LN core convolves through the FFT on the CPU: other frames move by rounding)
            change = (model(later, mouse="A", behavior=behavior) - out).abs().amax((0, 1))
            changed = change > 1e-4
            assert changed.tolist() == [i == first_changed for i in range(14)]


def test_bias_starts_at_the_mean_response():
    mean = np.array([0.05, 0.5, 1.0, 3.0])
    mice = {"A": dataclasses.replace(MICE["B"], mean_response=mean)}
    model = sm.create_model("ln", mice=mice, channels=2).eval()
    with torch.no_grad():
        model.readouts["A"].features.zero_()
        out = model(*clip(frames=12)[:1], mouse="A")
    torch.testing.assert_close(out[0, :, 0], torch.tensor(mean, dtype=torch.float32))
    zero = sm.create_model("ln", mice=MICE, channels=2).readouts["A"].bias
    assert not zero.detach().any()


def test_overrides_are_typed_and_lists_become_tuples():
    model = sm.create_model("factorized_baseline", mice=MICE, hidden_channels=[4, 4, 8],
                            momentum=1)
    assert model.config.hidden_channels == (4, 4, 8) and model.core.out_channels == 8
    assert isinstance(model.config.momentum, float)
    assert model.config == dataclasses.replace(sm.model_config("factorized_baseline"),
                                               hidden_channels=(4, 4, 8), momentum=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.config.momentum = 0.1  # type: ignore[misc]


def test_registry_errors_name_the_choices():
    with pytest.raises(ValueError, match=r"unknown model 'resnet'; registered models: .*"
                                         r"factorized_baseline, gru_baseline, ln"):
        sm.create_model("resnet", mice=MICE)
    with pytest.raises(ValueError, match=r"unknown model 'resnet'.*list_models"):
        sm.model_config("resnet")
    with pytest.raises(TypeError, match=r"unknown option 'hiden_channels' for model "
                                        r"'factorized_baseline'; valid options: .*hidden_channels"):
        sm.create_model("factorized_baseline", mice=MICE, hiden_channels=(4, 4, 4))
    with pytest.raises(TypeError, match=r"option 'hidden_channels' of model "
                                        r"'factorized_baseline' must be a list of ints; got 8"):
        sm.create_model("factorized_baseline", mice=MICE, hidden_channels=8)
    with pytest.raises(TypeError, match=r"option 'shifter' of model 'ln' must be true or false"):
        sm.create_model("ln", mice=MICE, shifter="yes")
    with pytest.raises(ValueError, match=r"one entry per layer"):
        sm.create_model("factorized_baseline", mice=MICE, hidden_channels=(4, 4))
    with pytest.raises(ValueError, match=r"kernels odd"):
        sm.create_model("gru_baseline", mice=MICE, input_kernel=4)
    with pytest.raises(ValueError, match=r"channels=-1 is negative"):
        sm.create_model("ln", mice=MICE, channels=-1)
    with pytest.raises(ValueError, match=r"at least one mouse"):
        sm.create_model("ln", mice={})
    with pytest.raises(ValueError, match=r"in_channels=0; it must be a positive int"):
        sm.create_model("ln", mice=MICE, in_channels=0)
    with pytest.raises(ValueError, match=r"a model named 'ln' is already registered"):
        sm.register_model(ln.ln)


def test_forward_errors_name_the_fix():
    model = small("ln")
    videos, behavior = clip()
    with pytest.raises(ValueError, match=r"unknown mouse 'Z'; this model has readouts for "
                                         r"\['A', 'B'\]"):
        model(videos, mouse="Z")
    with pytest.raises(ValueError, match=r"unknown mouse 'Z'"):
        model.regularizer("Z")
    with pytest.raises(ValueError, match=r"videos have 5 channels but the model was built for "
                                         r"in_channels=3.*in_channels=5"):
        model(clip(channels=5)[0], mouse="A")
    with pytest.raises(ValueError, match=r"videos have 10 frames; this model needs at least 11"):
        model(clip(frames=10)[0], mouse="A")
    with pytest.raises(ValueError, match=r"behavior must be \(B, 4, T\) = \(2, 4, 24\).*"
                                         r"got \(2, 2, 24\)"):
        model(videos, mouse="A", behavior=behavior[:, 2:])
    with pytest.raises(ValueError, match=r"must be \(B, C, T, H, W\); got shape \(3, 24, 36, 64\)"):
        model(videos[0], mouse="A")
    with pytest.raises(ValueError, match=r"coords has shape \(3, 2\); a mouse of n_neurons=4"):
        sm.MouseSpec(n_neurons=4, coords=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"mean_response has shape \(3,\); expected \(4,\)"):
        sm.MouseSpec(n_neurons=4, coords=np.zeros((4, 2)), mean_response=np.zeros(3))
    with pytest.raises(ValueError, match=r"mouse name 'a.b' cannot name a readout"):
        sm.create_model("ln", mice={"a.b": MICE["A"]})


def test_ensemble_averages_its_members():
    members = [small("ln"), small("ln", channels=3)]
    both = sm.Ensemble(members).eval()
    videos, behavior = clip()
    with torch.no_grad():
        expected = sum(m(videos, mouse="B", behavior=behavior) for m in members) / 2
        torch.testing.assert_close(both(videos, mouse="B", behavior=behavior), expected)
    assert both.burn_in == 10 and both.mice == ["A", "B"] and both.in_channels == 3
    assert float(both.regularizer("A").detach()) > 0


def test_ensemble_members_must_agree():
    with pytest.raises(ValueError, match=r"model 1 has burn_in=18 but model 0 has 10"):
        sm.Ensemble([small("ln"), small("factorized_baseline")])
    other = sm.create_model("ln", mice={"A": MICE["A"]}, channels=2)
    with pytest.raises(ValueError, match=r"model 1 has mice \['A'\] but model 0 has \['A', 'B'\]"):
        sm.Ensemble([small("ln"), other])
    wide = sm.create_model("ln", mice=MICE, channels=2, in_channels=5)
    with pytest.raises(ValueError, match=r"model 1 has in_channels=5 but model 0 has 3"):
        sm.Ensemble([small("ln"), wide])
    with pytest.raises(ValueError, match=r"at least one model"):
        sm.Ensemble([])
    with pytest.raises(ValueError, match=r"unknown mouse 'Z'"):
        sm.Ensemble([small("ln")])(clip()[0], mouse="Z")


def test_state_dict_round_trip():
    model = small("gru_baseline").eval()
    clone = small("gru_baseline", init_sigma=0.5).eval()
    clone.load_state_dict(model.state_dict())
    videos, behavior = clip(frames=6)
    with torch.no_grad():
        torch.testing.assert_close(clone(videos, mouse="B", behavior=behavior),
                                   model(videos, mouse="B", behavior=behavior))


def test_mouse_specs_from_a_recording(make_tree, tmp_path):
    store = sd.convert(make_tree(n_neurons=5), tmp_path / "toy.zarr", progress=False)
    ds = sd.open_mouse(store)
    spec = sm.mouse_specs({"toy": ds})["toy"]
    assert spec.n_neurons == 5 and spec.mean_response is None
    np.testing.assert_array_equal(spec.coords, np.stack([ds.x.values, ds.y.values], axis=1))
    model = sm.create_model("ln", mice=sm.mouse_specs({"toy": ds}), channels=2)
    assert model.mice == ["toy"]
    with pytest.raises(ValueError, match=r"recording 'bare' has no coordinate 'x'"):
        sm.mouse_specs({"bare": ds.drop_vars(["x", "y"])})


@pytest.mark.parametrize("module", [specs, readout, regularizers, registry, encoder, ensemble])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("name", MODELS)
def test_a_neuron_without_a_position_is_refused_by_readouts_that_place_neurons(name):
    # Before, the plain Gaussian readouts centred the coordinates on a NaN mean: one neuron
    # without a position made every neuron's prediction NaN, silently.
    holes = RNG.normal(size=(4, 2))
    holes[1] = np.nan
    mice = {"A": sm.MouseSpec(n_neurons=4, coords=holes)}
    try:
        model = sm.create_model(name, mice=mice, **SMALL.get(name, {}))
    except ValueError as err:
        assert "1 of 4 neurons have no cortical coordinates" in str(err)
        assert "readout='pooled'" in str(err)
        return
    # Only a readout that does not read positions may accept them: its outputs stay finite.
    assert model.config.readout == "pooled", model.config.readout
