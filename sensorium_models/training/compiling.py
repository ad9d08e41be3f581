"""``torch.compile`` of a model whose forward takes the mouse by name."""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


def compile_model(model: nn.Module) -> nn.Module:
    """``torch.compile(model)``, with room for one graph per mouse.

    The forward takes the mouse as a string, so dynamo guards on it and compiles one graph
    per mouse (and again for each train/eval switch). Its default limit of 8 recompilations
    ran the later mice of a five-mouse model eagerly, without a word but a warning (seen on
    an H200, docs/benchmarks.md); the limit is raised to four graphs per mouse.
    """
    mice = len(getattr(getattr(model, "module", model), "mice", ())) or 1  # DDP: .module
    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    needed = 4 * mice + 8
    if getattr(config, name) < needed:
        log.info("torch.compile: %s raised to %d (one graph per mouse of %d)", name, needed,
                 mice)
        setattr(config, name, needed)
    return torch.compile(model)  # type: ignore[return-value]
