"""compile_model leaves room for one compiled graph per mouse."""

from __future__ import annotations

import numpy as np
import torch

import sensorium_models as sm
from sensorium_models.training.compiling import compile_model


def test_the_recompile_limit_grows_with_the_mice(monkeypatch) -> None:
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    monkeypatch.setattr(config, name, 8)
    mice = {f"m{i}": sm.MouseSpec(n_neurons=3, coords=np.random.default_rng(i).random((3, 2)))
            for i in range(10)}
    model = sm.create_model("ln", mice=mice, channels=2)
    compiled = compile_model(model)
    assert getattr(config, name) == 4 * 10 + 8
    assert compiled is not model  # the compiled wrapper; the model itself is untouched
    assert set(compiled.state_dict()) == {f"_orig_mod.{k}" for k in model.state_dict()}
