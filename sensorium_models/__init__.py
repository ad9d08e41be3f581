"""sensorium_models: the SENSORIUM benchmarks' metrics, leaderboard, submissions, models and
their figures."""

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
from sensorium_models.scoring import evaluate_runs
from sensorium_models.submission import (
    read_submission,
    score_submission,
    validate_submission,
    write_submission,
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
    "read_submission",
    "register_model",
    "register_readout",
    "score_submission",
    "single_trial_correlation",
    "train",
    "validate_submission",
    "write_submission",
]
