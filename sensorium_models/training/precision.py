"""Mixed precision of a run (``precision`` in the config): the autocast of the forward passes
and, for fp16, the gradient scaler that keeps small gradients from underflowing."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch

from sensorium_models.training.predict import Autocast, autocast_for, no_autocast

if TYPE_CHECKING:
    from sensorium_models.training.config import TrainConfig

log = logging.getLogger(__name__)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(config: TrainConfig, device: torch.device
                      ) -> tuple[Autocast, torch.amp.GradScaler | None]:
    """The autocast and the gradient scaler (fp16 only) of ``config.precision`` on ``device``.

    ``"auto"`` keeps the trainer's earlier rule: bf16 on a GPU when ``amp``, else none.
    ``"bf16"`` and ``"fp16"`` autocast on any device (the CPU too, mostly to test them).

    Examples
    --------
    >>> import torch
    >>> from sensorium_models.training.config import TrainConfig
    >>> autocast, scaler = resolve_precision(TrainConfig(precision="fp16"), torch.device("cpu"))
    >>> with autocast():
    ...     torch.nn.Linear(2, 2)(torch.ones(1, 2)).dtype
    torch.float16
    >>> scaler is not None
    True
    """
    if config.precision == "auto":
        if config.amp and device.type != "cuda":
            log.info("amp=true is ignored on %s: bf16 autocast runs on CUDA devices only "
                     "(precision='bf16' forces it)", device)
        return autocast_for(device, config.amp), None
    if config.precision == "fp32":
        return no_autocast, None
    dtype = DTYPES[config.precision]

    def autocast() -> torch.autocast:
        return torch.autocast(device_type=device.type, dtype=dtype)

    scaler = torch.amp.GradScaler(device.type) if config.precision == "fp16" else None
    return autocast, scaler
