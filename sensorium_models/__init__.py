"""sensorium_models: the SENSORIUM benchmarks' metrics, leaderboard, submissions and models."""

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
from sensorium_models.submission import (
    read_submission,
    score_submission,
    validate_submission,
    write_submission,
)

__all__ = [
    "RunningCorrelationToAverage",
    "RunningFEVE",
    "RunningOracleCorrelation",
    "RunningSingleTrialCorrelation",
    "correlation_to_average",
    "evaluate",
    "feve",
    "official_precision",
    "oracle_correlation",
    "read_submission",
    "score_submission",
    "single_trial_correlation",
    "validate_submission",
    "write_submission",
]
