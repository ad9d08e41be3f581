"""Every docstring example of sensorium_data runs as a doctest and shows what it prints.

Examples that need a recording use ``tiny``: the folders of three simulated recordings
(``sd.simulate(folder, preset="tiny", scale=0.2)``), made once for this module, converted into
an empty cache; ``static2022``, the stores of two simulated SENSORIUM 2022 recordings
(``preset="static2022"``, scale 0.1, images at half size), made only if an example names them.
Each module's examples run in a fresh folder. Only examples that download (``fetch_mouse("F")``,
``download``), open a real recording or need a cluster stay skipped, each beside a runnable twin
where one makes sense.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import sensorium_data as sd

MODULES = ["sensorium_data", *sorted(
    m.name for m in pkgutil.walk_packages(sd.__path__, "sensorium_data."))]


def examples(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    return [t for t in doctest.DocTestFinder().find(module) if t.examples]


WITH_EXAMPLES = [name for name in MODULES if examples(name)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return sd.simulate(tmp_path_factory.mktemp("tiny"), preset="tiny", scale=0.2,
                       progress=False)


def test_the_modules_with_examples_are_found():
    # the examples of the store, the tree, the dataset and the loaders are among them
    for name in ("sensorium_data.store.layout", "sensorium_data.tree.reader",
                 "sensorium_data.dataset", "sensorium_data.loaders.clips"):
        assert name in WITH_EXAMPLES


@pytest.fixture(scope="module")
def static2022(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("static2022")
    trees = sd.simulate(root, preset="static2022", scale=0.1, image_scale=0.5, progress=False)
    return [sd.convert(t, root / f"{t.name}.zarr", progress=False) for t in trees[:2]]


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples_run(name, tiny, request, tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SENSORIUM_DATA_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.chdir(tmp_path)  # what an example writes lands in a fresh folder
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    for test in examples(name):
        test.globs["tiny"] = tiny
        if any("static2022" in e.source for e in test.examples):
            test.globs["static2022"] = request.getfixturevalue("static2022")
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)
    assert result.attempted > 0, f"{name}: every example is skipped"  # skips are not tries
