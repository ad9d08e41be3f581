"""Knowledge distillation (DwiseNeuro's stage 2): a trained teacher fills the targets of the
mice a sample was not recorded from.

A clip was shown to one mouse, but the model has a readout for every mouse: the teacher's
predictions for the same (CutMixed) clip stand in for the other mice's responses. Each
distilled (sample, mouse) pair is weighted so that, after the loss is normalized by the sum
of the weights, the recorded targets carry ``1 - ratio`` of it and the distilled ones
``ratio`` (0.36 in the authors' code; their README's "0.36 %" is a typo for 36 %). The
teacher must be the stage-1 model of the same fold, so that no validation trial leaks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from sensorium_models.training.loop import EPS
from sensorium_models.training.mixed import mixed_forward

if TYPE_CHECKING:
    from torch import nn

    from sensorium_models.models import VideoEncoder

#: The share of the loss the distilled targets carry.
RATIO = 0.36
#: Loader options the teacher must share with the student: it predicts the student's clips.
SHARED = ("normalize", "behavior_channels", "pupil_channels", "frame_step", "canvas",
          "relu_responses", "frames", "fold", "folds")


def check_teacher(teacher: str | os.PathLike[str], *, model: str, mice: Sequence[str],
                  options: Mapping[str, Any]) -> VideoEncoder:
    """The teacher run's best model, after checking it can teach this run.

    Parameters
    ----------
    teacher
        A finished run directory (``config.json`` and ``best.pt``).
    model, mice, options
        The student's model name, recording names and config values (:data:`SHARED` must
        agree).

    Raises
    ------
    ValueError
        Not a run, another model family, other mice or other loader options; the message
        names what differs and the fix.
    """
    from sensorium_models.models import model_config
    from sensorium_models.training.checkpoint import BEST, CONFIG, load_run, read_config

    folder = Path(teacher)
    if not (folder / CONFIG).is_file() or not (folder / BEST).is_file():
        msg = (f"teacher={str(teacher)!r} is not a finished run directory (it needs {CONFIG} and "
               f"{BEST}); pass the stage-1 run of the same fold, e.g. runs/dwiseneuro-fold0.")
        raise ValueError(msg)
    config = read_config(folder)
    if type(model_config(config.model)) is not type(model_config(model)):
        msg = (f"teacher {folder} is a {config.model} run; a teacher of {model} must be a run "
               f"of the same model family ({type(model_config(model)).__name__}), trained on "
               "the same mice.")
        raise ValueError(msg)
    values = config.to_dict()
    differing = [f"{k}: teacher {values[k]!r}, this run {options[k]!r}" for k in SHARED
                 if values[k] != options[k]]
    if differing:
        msg = (f"teacher {folder} was trained with other options ({'; '.join(differing)}); it "
               "must see the clips this run sees: train it with the same loader options and "
               "fold.")
        raise ValueError(msg)
    network: VideoEncoder = load_run(folder)  # type: ignore[assignment]
    if sorted(network.mice) != sorted(mice):
        msg = (f"teacher {folder} was trained on mice {sorted(network.mice)}, this run on "
               f"{sorted(mice)}; distillation needs a readout of the teacher for every mouse of "
               "the run: train the teacher on the same mice.")
        raise ValueError(msg)
    return network


def distillation_weights(recorded: Tensor, ratio: float = RATIO) -> Tensor:
    """Per (sample, mouse) loss weights: 1 for a recorded target, ``ratio / (1 - ratio) *
    n_recorded / n_distilled`` for a distilled one, so that the distilled pairs carry
    ``ratio`` of the normalized total.

    Parameters
    ----------
    recorded
        (B, M) bool: sample b was recorded from mouse m (one True per row).

    Examples
    --------
    >>> w = distillation_weights(torch.tensor([[True, False, False], [False, True, False]]))
    >>> [[round(v, 5) for v in row] for row in w.tolist()]  # 0.36 / 0.64 * 2 real / 4
    [[1.0, 0.28125, 0.28125], [0.28125, 1.0, 0.28125]]
    >>> round(float(w[~torch.tensor([[True, False, False], [False, True, False]])].sum()
    ...       / w.sum()), 2)
    0.36
    """
    if not 0 <= ratio < 1:
        msg = f"ratio={ratio}; the distilled share of the loss must lie in [0, 1)."
        raise ValueError(msg)
    real = recorded.to(torch.float32)
    n_real, n_distilled = real.sum(), (1 - real).sum()
    if n_distilled == 0:
        return real
    return real + (1 - real) * ratio / (1 - ratio) * n_real / n_distilled


@torch.no_grad()
def teacher_targets(teacher: VideoEncoder, videos: Tensor, behavior: Tensor) -> dict[str, Tensor]:
    """The teacher's predictions for every mouse of a batch of clips: mouse -> (B, N, T_out),
    its core run once over the batch."""
    return mixed_forward(teacher, videos, behavior, [teacher.mice[0]] * len(videos),
                         every_mouse=True)


def poisson_per_clip(predictions: Tensor, targets: Tensor) -> Tensor:
    """(B,) the summed Poisson loss of each clip (:func:`.loop.poisson_loss` row by row).

    Examples
    --------
    >>> from sensorium_models.training.loop import poisson_loss
    >>> y, p = torch.rand(3, 4, 5), torch.rand(3, 4, 5) + 0.1
    >>> bool(torch.isclose(poisson_per_clip(p, y).sum(), poisson_loss(p, y)))
    True
    """
    valid = torch.isfinite(targets)
    targets = torch.where(valid, targets, torch.zeros_like(targets))
    terms = predictions - targets * torch.log(predictions + EPS)  # (B, N, T)
    return torch.where(valid, terms, torch.zeros_like(terms)).flatten(1).sum(1)


def distilled_loss(model: VideoEncoder, teacher: VideoEncoder, videos: Tensor, behavior: Tensor,
                   responses: Sequence[Tensor], mice: Sequence[str], *,
                   loss_scale: Mapping[str, float], core: nn.Module | None = None,
                   ratio: float = RATIO) -> Tensor:
    """The loss of a batch that mixes mice, every readout fitted on every clip: a clip's
    recorded responses for its own mouse, the teacher's predictions for the others.

    Each (clip, mouse) pair's summed Poisson loss, times the mouse's ``loss_scale``, is
    weighted by :func:`distillation_weights` and the total rescaled by ``n_recorded /
    sum(weights)``: without distilled pairs it is the loss of :mod:`.mixed`'s batches, with
    them the recorded pairs carry ``1 - ratio`` of it and the distilled ``ratio``.

    Parameters
    ----------
    model, teacher
        The student and the (frozen, evaluating) teacher, with readouts for the same mice.
    videos, behavior
        (B, C, F, H, W) clips (CutMixed or not: the teacher sees the same ones) and
        (B, 4, F) behaviour.
    responses
        B (N_i, F) recorded responses of the clips' own mice.
    mice
        The B clips' mice.
    """
    outs = mixed_forward(model, videos, behavior, mice, core=core,
                         every_mouse=True)  # mouse -> (B, N_m, T_out)
    taught = teacher_targets(teacher, videos, behavior)  # mouse -> (B, N_m, T_out)
    recorded = torch.tensor([[m == own for m in model.mice] for own in mice],
                            device=videos.device)  # (B, M)
    weights = distillation_weights(recorded, ratio)  # (B, M)
    total = videos.new_zeros((), dtype=torch.float32)
    for k, mouse in enumerate(model.mice):
        out = outs[mouse].float()  # (B, N_m, T_out)
        target = taught[mouse].float().clone()  # (B, N_m, T_out)
        for row in torch.nonzero(recorded[:, k]).flatten().tolist():
            target[row] = responses[row][:, -out.shape[-1]:]
        total = total + (weights[:, k] * poisson_per_clip(out, target)).sum() * loss_scale[mouse]
    return total * recorded.sum() / weights.sum()
