"""Training, checkpoints and whole-trial prediction for the registered models.

>>> import sensorium_models as sm
>>> config = sm.TrainConfig(model="factorized_baseline", mice=("F", "G", "H", "I", "J"))
>>> run = sm.train(config)  # on a GPU; the mice are downloaded on first use  # doctest: +SKIP

A run trained on the simulated tiny mice (``run``) predicts their recordings (``datasets``):

>>> predictions = sm.predict(run, datasets, tiers="oracle")

See ``docs/training.md``.
"""

from sensorium_models.training.checkpoint import CheckpointError, load_run, read_config
from sensorium_models.training.config import ConfigError, TrainConfig
from sensorium_models.training.predict import predict
from sensorium_models.training.run import train

__all__ = ["CheckpointError", "ConfigError", "TrainConfig", "load_run", "predict",
           "read_config", "train"]
