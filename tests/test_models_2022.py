"""The SENSORIUM 2022 models: the starter kit's parameter counts at the real neuron counts,
images as one-frame clips, the LN core's linearity, V1T's behaviour conditioning, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import sensorium_models as sm

RNG = np.random.default_rng(0)


def mouse(n: int) -> dict[str, sm.MouseSpec]:
    return {"m": sm.MouseSpec(n_neurons=n, coords=RNG.normal(size=(n, 2)) * 100)}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_sota_counts_match_the_starter_kit_at_7776_neurons():
    # notes A5: core 55,808 parameters for 4 input channels (image + 3 behaviour), a
    # FullGaussian2d readout of 536,696 for the 7,776 neurons of 26872-17-20
    model = sm.create_model("sota_2022", mice=mouse(7776), in_channels=4)
    assert count(model.core) == 55_808
    assert count(model.readouts["m"]) == 536_696
    assert model.shifters is None


def test_the_sensorium_plus_shifter_adds_the_mlp_2_5_5_2():
    model = sm.create_model("sota_2022", mice=mouse(7538), in_channels=4, shifter=True)
    assert count(model.shifters["m"]) == (2 * 5 + 5) + (5 * 5 + 5) + (5 * 2 + 2)


def test_the_ln_core_is_the_sota_core_with_three_layers_and_no_elu():
    sota, ln = sm.model_config("sota_2022"), sm.model_config("ln_2022")
    assert dataclasses.replace(sota, layers=3, linear=True) == ln
    x, y = 10 * torch.randn(2, 1, 1, 36, 64), 10 * torch.randn(2, 1, 1, 36, 64)

    def non_additivity(core: torch.nn.Module) -> float:
        """How far f(x + y) - f(0) is from (f(x) - f(0)) + (f(y) - f(0)), relative to f's size."""
        with torch.no_grad():
            f0 = core(torch.zeros_like(x))
            gap = (core(x + y) - f0) - (core(x) - f0) - (core(y) - f0)
            return float(gap.abs().max() / (core(x + y) - f0).abs().max())

    torch.manual_seed(0)
    assert non_additivity(ln.build_core(1).eval()) < 1e-4  # affine in eval mode
    assert non_additivity(sota.build_core(1).eval()) > 1e-2


@pytest.mark.parametrize("name", ["sota_2022", "ln_2022"])
def test_an_image_batch_is_a_batch_of_one_frame_clips(name):
    model = sm.create_model(name, mice=mouse(5), in_channels=1, hidden_channels=4).eval()
    images = torch.randn(3, 1, 1, 36, 64)  # (B, C, 1, H, W)
    with torch.no_grad():
        out = model(images, mouse="m")  # (B, N, 1)
        one_by_one = torch.cat([model(images[i:i + 1], mouse="m") for i in range(3)])
    assert out.shape == (3, 5, 1)
    torch.testing.assert_close(out, one_by_one)
    assert model.core(images).shape == (3, 4, 1, 28, 56)  # the starter kit's 28 x 56 grid


def test_the_first_layer_penalty_is_gamma_input_times_the_laplace_norm():
    from sensorium_models.models.regularizers import laplace_l2

    core = sm.model_config("sota_2022").build_core(1)
    expected = 6.3831 * laplace_l2(core.convs[0].weight)
    torch.testing.assert_close(core.regularizer(), expected)


V1T_SMALL = {"embed_dim": 8, "heads": 2, "mlp_dim": 8, "depth": 2, "patch_stride": 4}


def test_v1t_blocks_see_the_behaviour_channels():
    torch.manual_seed(0)
    model = sm.create_model("v1t", mice=mouse(5), in_channels=4, **V1T_SMALL).eval()
    image = torch.randn(1, 1, 1, 36, 64)
    calm = torch.cat([image, torch.zeros(1, 3, 1, 36, 64)], 1)  # behaviour 0
    running = torch.cat([image, torch.ones(1, 3, 1, 36, 64)], 1)  # behaviour 1
    with torch.no_grad():
        assert not torch.allclose(model(calm, mouse="m"), model(running, mouse="m"))
    # one behaviour MLP per block, 3 -> D/2 -> D
    assert all(b.behavior is not None for b in model.core.blocks)
    assert model.core.blocks[0].behavior.mlp[0].in_features == 3
    # the grid of patches: (36 - 8) / 4 + 1 rows, (64 - 8) / 4 + 1 columns
    assert model.core(calm).shape == (1, 8, 1, 8, 15)


def test_v1t_without_behaviour_channels_has_no_behaviour_mlp():
    model = sm.create_model("v1t", mice=mouse(5), in_channels=1, **V1T_SMALL)
    assert all(b.behavior is None for b in model.core.blocks)
    assert model(torch.randn(2, 1, 1, 36, 64), mouse="m").shape == (2, 5, 1)


def test_v1t_rejects_images_of_another_size():
    model = sm.create_model("v1t", mice=mouse(5), in_channels=1, **V1T_SMALL)
    with pytest.raises(ValueError, match=r"images are 72 x 128 .* height=72, width=128"):
        model(torch.randn(1, 1, 1, 72, 128), mouse="m")


@pytest.mark.parametrize(("name", "options", "match"), [
    ("sota_2022", {"hidden_kernel": 6}, "hidden_kernel=6 is even"),
    ("sota_2022", {"layers": 0}, "layers=0"),
    ("v1t", {"patch_stride": 9}, "stride must be <= the patch size"),
    ("v1t", {"patch_size": 40}, "a patch must fit in the image"),
    ("v1t", {"drop_path": 1.0}, "each must be < 1"),
])
def test_bad_options_are_named(name, options, match):
    with pytest.raises(ValueError, match=match):
        sm.create_model(name, mice=mouse(3), **options)
