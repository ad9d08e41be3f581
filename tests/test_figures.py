"""Figures of a trained run: ``sm.plot_run`` and ``sensorium plot``."""

from __future__ import annotations

import pytest

import sensorium_data as sd
import sensorium_models as sm
from sensorium_models.cli import main
from sensorium_models.figures import labelled_tiers, pick_mouse

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def datasets(simulated_stores):
    return {ds.attrs["mouse"]: ds for ds in map(sd.open_mouse, simulated_stores)}


def test_plot_run_draws_every_figure_of_a_simulated_run(trained_run, datasets, tmp_path):
    paths = sm.plot_run(trained_run, datasets, out=tmp_path / "figs", device="cpu")
    assert [p.name for p in paths] == ["learning_curves.png", "traces.png", "correlations.png",
                                       "readout_positions.png", "receptive_fields.png"]
    for path in paths:
        assert path.parent == tmp_path / "figs"
        assert path.read_bytes().startswith(PNG) and path.stat().st_size > 5_000


def test_the_datasets_may_be_keyed_by_any_name(trained_run, datasets, tmp_path):
    keyed = {f"mouse {k}": ds for k, ds in enumerate(datasets.values())}
    paths = sm.plot_run(trained_run, keyed, out=tmp_path, mouse="tiny-B", device="cpu")
    assert len(paths) == 5


def test_a_recording_without_ground_truth_gets_no_truth_figures(trained_run, datasets, tmp_path):
    recorded = {}
    for name, ds in datasets.items():
        ds = ds.drop_vars("rates")
        ds.attrs = {k: v for k, v in ds.attrs.items() if k != "source"}  # no simulation files
        recorded[name] = ds
    paths = sm.plot_run(trained_run, recorded, out=tmp_path, device="cpu")
    assert [p.name for p in paths] == ["learning_curves.png", "traces.png", "correlations.png",
                                       "readout_positions.png"]


def test_figures_are_never_written_over_silently(trained_run, datasets, tmp_path):
    out = tmp_path / "figs"
    out.mkdir()
    (out / "traces.png").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match=r"traces\.png.*--overwrite"):
        sm.plot_run(trained_run, datasets, out=out, device="cpu")
    assert (out / "traces.png").read_bytes() == b"mine"
    assert sorted(p.name for p in out.iterdir()) == ["traces.png"]
    sm.plot_run(trained_run, datasets, out=out, device="cpu", overwrite=True)
    assert (out / "traces.png").read_bytes().startswith(PNG)


def test_an_unknown_mouse_or_a_tier_without_responses_is_named(trained_run, datasets, tmp_path):
    with pytest.raises(ValueError, match=r"mouse 'Q' is not one of the run's recordings: tiny-A"):
        sm.plot_run(trained_run, datasets, out=tmp_path, mouse="Q")
    with pytest.raises(ValueError, match=r"no trials of tier 'orcale'.*'oracle'.*--tier"):
        sm.plot_run(trained_run, datasets, out=tmp_path, tier="orcale")
    assert not list(tmp_path.iterdir())  # nothing drawn before the checks


def test_the_mouse_and_its_labelled_tiers(datasets):
    assert pick_mouse(datasets, None) == next(iter(datasets))
    assert pick_mouse(datasets, "tiny-B") == "tiny-B"
    ds = datasets["tiny-A"]
    tiers = labelled_tiers(ds)
    assert {"train", "oracle"} <= tiers and "none" not in tiers
    unlabelled = set(ds["tier"].values[~ds["labelled"].values.astype(bool)].astype(str))
    assert not tiers & (unlabelled - set(ds["tier"].values[ds["labelled"].values.astype(bool)]
                                             .astype(str)))


def test_sensorium_plot_writes_into_the_run_by_default(trained_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert main(["plot", str(run), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[0] == str(run / "figures" / "learning_curves.png")
    assert all((run / "figures" / name).is_file() for name in
               ("traces.png", "correlations.png", "readout_positions.png"))
    assert main(["plot", str(run)]) == 2
    assert "--overwrite" in capsys.readouterr().err
