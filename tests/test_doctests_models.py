"""The docstring examples of every module of sensorium_models, each docstring one test.

The examples that need recordings or a trained run use three globals, made once for this
module: ``tiny``, the zarr stores of the simulator's three tiny mice at scale 0.2 (a tuple of
paths); ``datasets``, those stores opened (name -> dataset); ``run``, the run directory of the
smallest model (``ln``) trained one epoch on them without scoring (seconds on a CPU);
``static2022``, one simulated SENSORIUM 2022 recording (opened), at a tenth of its size. A module
whose import needs an optional package that is missing is skipped, naming it.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
import tempfile
from pathlib import Path

import pytest

import sensorium_data as sd
import sensorium_models as sm
from sensorium_models.models import registry

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    names = ["sensorium_models"]
    for info in pkgutil.walk_packages(sm.__path__, prefix="sensorium_models."):
        names.append(info.name)
    return sorted(names)


def _docstrings() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder()
    found = []
    for name in _module_names():
        module = importlib.import_module(name)
        found += [t for t in finder.find(module) if t.examples]
    return sorted(found, key=lambda t: t.name)


DOCSTRINGS = _docstrings()
GLOBALS = ("tiny", "datasets", "run", "static2022")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    root = tmp_path_factory.mktemp("tiny")
    trees = sd.simulate(root / "trees", preset="tiny", scale=0.2, progress=False)
    return tuple(str(sd.convert(t, root / f"{t.name}.zarr", progress=False)) for t in trees)


@pytest.fixture(scope="module")
def datasets(tiny: tuple[str, ...]) -> dict:
    return {ds.attrs["mouse"]: ds for ds in map(sd.open_mouse, tiny)}


@pytest.fixture(scope="module")
def run(tiny: tuple[str, ...], tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = sm.TrainConfig(model="ln", mice=tiny, max_epochs=1, batch_size=2,
                            normalize="per_neuron", device="cpu", progress=False, score=False,
                            out=str(tmp_path_factory.mktemp("runs") / "ln"))
    return sm.train(config)


@pytest.fixture(scope="module")
def static2022(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("static2022")
    trees = sd.simulate(root, preset="static2022", scale=0.1, image_scale=0.125, progress=False)
    return sd.open_mouse(sd.convert(trees[0], root / "static2022-A.zarr", progress=False))


@pytest.mark.parametrize("test", DOCSTRINGS, ids=[t.name for t in DOCSTRINGS])
def test_docstring_examples(test, request, tmp_path, monkeypatch):
    # whatever an example writes (tempfile.mkdtemp() included) lands in a fresh folder
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # what an example registers (register_model, register_readout) is gone after it
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    monkeypatch.setattr(registry, "_READOUTS", dict(registry._READOUTS))
    # the globals an example names are made (once for the module) and given to it
    source = "".join(e.source for e in test.examples)
    for name in GLOBALS:
        if re.search(rf"\b{name}\b", source):
            test.globs[name] = request.getfixturevalue(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"


def test_every_module_is_collected():
    names = _module_names()
    assert "sensorium_models.submission.write" in names and "sensorium_models.cli" in names
    # the ones a user reads first have examples that run
    with_examples = {t.name for t in DOCSTRINGS if any(not e.options.get(doctest.SKIP)
                                                       for e in t.examples)}
    for name in ("sensorium_models.leaderboard.evaluate",
                 "sensorium_models.metrics.single_trial_correlation",
                 "sensorium_models.models.registry.create_model"):
        assert name in with_examples


def test_the_examples_leave_the_registry_as_it_was():
    # after the docstrings of register_model and register_readout (above, in this module)
    assert "ln_wide" not in sm.list_models()
    assert "my_gaussian" not in registry.list_readouts()
