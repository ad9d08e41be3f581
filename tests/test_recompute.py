"""Activation checkpointing: the same gradients, fewer saved activations, refused by cores
that cannot do it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sensorium_models as sm
from sensorium_models.training.config import ConfigError
from sensorium_models.training.recompute import checkpointing_models, enable_checkpointing

RNG = np.random.default_rng(0)
MICE = {"A": sm.MouseSpec(n_neurons=6, coords=RNG.normal(size=(6, 2)))}
TINY = {
    "dwiseneuro": {"stem_channels": 4, "channels": (4, 8), "strides": (2, 2), "expansion": 2,
                   "se_reduction": 2, "cortex": (8, 16), "window": 4, "window_batch": 8,
                   "drop_path": 0.2},
    "dynamic_v1fm": {"emb_dim": 8, "num_heads": 2, "mlp_dim": 8, "num_blocks": 2},
    "viv1t": {"tubelet_frames": 5, "embed_dim": 8, "heads": 2, "head_dim": 4, "mlp_dim": 8,
              "spatial_depth": 2, "temporal_depth": 2, "drop_path": 0.2},
}
FRAMES = {"dwiseneuro": 4, "dynamic_v1fm": 30, "viv1t": 12}


def step(name: str, checkpointing: bool) -> tuple[dict[str, torch.Tensor], int]:
    """Gradients of one training step and the bytes autograd saved for the backward pass."""
    torch.manual_seed(0)
    model = sm.create_model(name, mice=MICE, in_channels=5, **TINY[name])
    model.train()
    if checkpointing:
        enable_checkpointing(model, name)
    g = torch.Generator().manual_seed(1)
    videos = torch.randn(2, 5, FRAMES[name], 36, 64, generator=g)
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    torch.manual_seed(2)  # the readout's sampled positions and the drop-path draws
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(videos, mouse="A", behavior=torch.randn(2, 4, FRAMES[name], generator=g))
    out.sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, saved[0]


@pytest.mark.parametrize("name", sorted(TINY))
def test_checkpointing_gives_the_same_gradients_and_saves_less(name):
    plain, plain_bytes = step(name, checkpointing=False)
    recomputed, recomputed_bytes = step(name, checkpointing=True)
    assert plain.keys() == recomputed.keys()
    for key, grad in plain.items():
        torch.testing.assert_close(recomputed[key], grad, rtol=1e-5, atol=1e-6, msg=key)
    assert recomputed_bytes < 0.7 * plain_bytes, (recomputed_bytes, plain_bytes)


def test_the_recomputation_leaves_batch_norm_statistics_as_one_forward_pass_does():
    def buffers(checkpointing: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = sm.create_model("dwiseneuro", mice=MICE, in_channels=5, **TINY["dwiseneuro"])
        model.train()
        if checkpointing:
            enable_checkpointing(model, "dwiseneuro")
        g = torch.Generator().manual_seed(1)
        videos = torch.randn(2, 5, FRAMES["dwiseneuro"], 36, 64, generator=g)
        torch.manual_seed(2)
        out = model(videos, mouse="A",
                    behavior=torch.randn(2, 4, FRAMES["dwiseneuro"], generator=g))
        out.sum().backward()
        return {n: b.clone() for n, b in model.named_buffers()}

    plain, recomputed = buffers(False), buffers(True)
    assert any("running_mean" in n for n in plain)  # DwiseNeuro's blocks hold batch norms
    for key, value in plain.items():
        torch.testing.assert_close(recomputed[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_the_models_that_can_checkpoint_are_the_block_built_ones():
    # (other tests may leave models of their own registered)
    able = set(checkpointing_models())
    assert {"dwiseneuro", "dwiseneuro_distilled", "dynamic_v1fm", "viv1t"} <= able
    assert not able & {"factorized_baseline", "gru_baseline", "ln", "sota_2022", "ln_2022",
                       "v1t"}


def test_a_core_that_cannot_checkpoint_is_refused_by_name():
    model = sm.create_model("factorized_baseline", mice=MICE, hidden_channels=(2, 2, 2))
    with pytest.raises(ConfigError, match=r"checkpoint_activations=true: factorized_baseline's "
                                          r"core \(.*\) is not built of blocks .* \['dwiseneuro'"):
        enable_checkpointing(model, "factorized_baseline")


def test_the_trainer_turns_it_on(simulated_stores, tmp_path):
    from sensorium_models.training.options import resolve_model_config
    from sensorium_models.training.run import Trainer

    config = sm.TrainConfig(model="viv1t", mice=tuple(map(str, simulated_stores[:1])),
                            model_config=TINY["viv1t"], frames=12, batch_size=2,
                            checkpoint_activations=True, device="cpu", progress=False,
                            score=False, max_epochs=1)
    trainer = Trainer(config, resolve_model_config(config.model, config.model_config),
                      tmp_path, None)
    assert trainer.model.core.checkpointing
