"""Torch training views of the stores: clips, whole trials, 2022 images, a mouse batch sampler.

>>> import sensorium_data as sd
>>> clips = sd.ClipDataset(["F.zarr", "G.zarr"], frames=80, seed=0)  # doctest: +SKIP
>>> clips = sd.ClipDataset(tiny[:2], frames=30, seed=0)  # simulated recordings (sd.simulate)
>>> clips.mice
['tiny-A', 'tiny-B']

See ``docs/loading.md``.
"""

from sensorium_data.loaders.batching import collate
from sensorium_data.loaders.clips import ClipDataset, TrialDataset
from sensorium_data.loaders.images import ImageDataset, collate_images
from sensorium_data.loaders.sampler import MouseBatchSampler

__all__ = [
    "ClipDataset",
    "ImageDataset",
    "MouseBatchSampler",
    "TrialDataset",
    "collate",
    "collate_images",
]
