"""The docstring examples of every module of sensorium_models, each docstring one test.

The examples that need recordings simulate the tiny preset (a tenth of it: seconds). A
module whose import needs an optional package that is missing is skipped, naming it.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import tempfile

import pytest

import sensorium_models as sm

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


@pytest.mark.parametrize("test", DOCSTRINGS, ids=[t.name for t in DOCSTRINGS])
def test_docstring_examples(test, tmp_path, monkeypatch):
    # whatever an example writes (tempfile.mkdtemp() included) lands in a fresh folder
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
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
