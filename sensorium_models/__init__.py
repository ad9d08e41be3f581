"""sensorium_models: the SENSORIUM benchmarks' metrics, leaderboard, submissions, models and
their figures.

The public names are imported on first use (PEP 562), so ``sensorium --help`` and the
metrics do not import torch (about 1.5 s) until a model is needed.

>>> import sensorium_models as sm
>>> sm.feve.__module__
'sensorium_models.metrics'
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sensorium_models.figures import plot_run
    from sensorium_models.leaderboard import evaluate, official_precision
    from sensorium_models.metrics import (
        RunningCorrelationToAverage,
        RunningFEVE,
        RunningOracleCorrelation,
        RunningSingleTrialCorrelation,
        correlation_to_average,
        feve,
        oracle_correlation,
        single_trial_correlation,
    )
    from sensorium_models.models import (
        Ensemble,
        MouseSpec,
        create_model,
        list_models,
        list_readouts,
        model_config,
        mouse_specs,
        register_model,
        register_readout,
    )
    from sensorium_models.predictions import read_predictions, write_predictions
    from sensorium_models.scoring import evaluate_runs
    from sensorium_models.scoring2022 import leaderboard_2022, twin_feve, website_metrics
    from sensorium_models.submission import (
        read_submission,
        score_submission,
        validate_submission,
        write_submission,
    )
    from sensorium_models.submission2022 import (
        read_submission_2022,
        score_submission_2022,
        validate_submission_2022,
        write_submission_2022,
    )
    from sensorium_models.training import (
        CheckpointError,
        ConfigError,
        TrainConfig,
        load_run,
        predict,
        read_config,
        train,
    )

__all__ = [
    "CheckpointError",
    "ConfigError",
    "Ensemble",
    "MouseSpec",
    "RunningCorrelationToAverage",
    "RunningFEVE",
    "RunningOracleCorrelation",
    "RunningSingleTrialCorrelation",
    "TrainConfig",
    "correlation_to_average",
    "create_model",
    "evaluate",
    "evaluate_runs",
    "feve",
    "leaderboard_2022",
    "list_models",
    "list_readouts",
    "load_run",
    "model_config",
    "mouse_specs",
    "official_precision",
    "oracle_correlation",
    "plot_run",
    "predict",
    "read_config",
    "read_predictions",
    "read_submission",
    "read_submission_2022",
    "register_model",
    "register_readout",
    "score_submission",
    "score_submission_2022",
    "single_trial_correlation",
    "train",
    "twin_feve",
    "validate_submission",
    "validate_submission_2022",
    "website_metrics",
    "write_predictions",
    "write_submission",
    "write_submission_2022",
]

# public name -> the module of sensorium_models that defines it
_HOMES = {
    "plot_run": "figures",
    "evaluate": "leaderboard",
    "official_precision": "leaderboard",
    "evaluate_runs": "scoring",
    **dict.fromkeys(
        ["RunningCorrelationToAverage", "RunningFEVE", "RunningOracleCorrelation",
         "RunningSingleTrialCorrelation", "correlation_to_average", "feve",
         "oracle_correlation", "single_trial_correlation"], "metrics"),
    **dict.fromkeys(
        ["Ensemble", "MouseSpec", "create_model", "list_models", "list_readouts",
         "model_config", "mouse_specs", "register_model", "register_readout"], "models"),
    **dict.fromkeys(["read_predictions", "write_predictions"], "predictions"),
    **dict.fromkeys(["leaderboard_2022", "twin_feve", "website_metrics"], "scoring2022"),
    **dict.fromkeys(["read_submission_2022", "score_submission_2022", "validate_submission_2022",
                     "write_submission_2022"], "submission2022"),
    **dict.fromkeys(
        ["read_submission", "score_submission", "validate_submission", "write_submission"],
        "submission"),
    **dict.fromkeys(
        ["CheckpointError", "ConfigError", "TrainConfig", "load_run", "predict", "read_config",
         "train"], "training"),
}


def __getattr__(name: str) -> Any:
    """A public name, or a submodule (``sm.models``), imported on first use."""
    if name in _HOMES:
        value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    if not name.startswith("_"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
