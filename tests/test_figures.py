"""Figures of a trained run: ``sm.plot_run`` and ``sensorium plot``."""

from __future__ import annotations

import pandas as pd
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


@pytest.fixture(scope="module")
def drawn_for_b(trained_run, datasets, tmp_path_factory):
    """The figures of mouse tiny-B, the datasets keyed by their names: name -> PNG bytes."""
    paths = sm.plot_run(trained_run, datasets, out=tmp_path_factory.mktemp("figs"),
                        mouse="tiny-B", device="cpu")
    return {p.name: p.read_bytes() for p in paths}


def test_the_datasets_may_be_keyed_by_any_name(trained_run, datasets, drawn_for_b, tmp_path):
    keyed = {f"mouse {k}": ds for k, ds in enumerate(datasets.values())}
    paths = sm.plot_run(trained_run, keyed, out=tmp_path, mouse="tiny-B", device="cpu")
    # the same figures, pixel for pixel, as with the datasets keyed by their names
    assert {p.name: p.read_bytes() for p in paths} == drawn_for_b


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
    with pytest.raises(FileExistsError, match=r"traces\.png.*overwrite=True"):
        sm.plot_run(trained_run, datasets, out=out, device="cpu")
    assert (out / "traces.png").read_bytes() == b"mine"
    assert sorted(p.name for p in out.iterdir()) == ["traces.png"]
    sm.plot_run(trained_run, datasets, out=out, device="cpu", overwrite=True)
    assert (out / "traces.png").read_bytes().startswith(PNG)


def test_an_unknown_mouse_or_a_tier_without_responses_is_named(trained_run, datasets, tmp_path):
    with pytest.raises(ValueError, match=r"mouse 'Q' is not one of the run's recordings: tiny-A"):
        sm.plot_run(trained_run, datasets, out=tmp_path, mouse="Q")
    with pytest.raises(ValueError, match=r"no trials of tier 'orcale'.*'oracle'.*as tier="):
        sm.plot_run(trained_run, datasets, out=tmp_path, tier="orcale")
    assert not list(tmp_path.iterdir())  # nothing drawn before the checks


def test_a_tier_without_responses_is_refused(trained_run, datasets, tmp_path):
    ds = datasets["tiny-A"]
    hidden = ds.assign_coords(labelled=ds["labelled"].where(ds["tier"] != "oracle", False))
    assert "oracle" in labelled_tiers(ds) and "oracle" not in labelled_tiers(hidden)
    assert "train" in labelled_tiers(hidden) and "none" not in labelled_tiers(hidden)
    with pytest.raises(ValueError, match=r"tiny-A has no trials of tier 'oracle' with responses"):
        sm.plot_run(trained_run, {**datasets, "tiny-A": hidden}, out=tmp_path)
    assert not list(tmp_path.iterdir())


def test_recordings_the_run_was_not_trained_on_are_left_out(trained_run, datasets, drawn_for_b,
                                                            tmp_path):
    stranger = datasets["tiny-C"].copy()
    stranger.attrs = {**stranger.attrs, "mouse": "stranger"}
    only_a = {"tiny-A": datasets["tiny-A"], "stranger": stranger}
    with pytest.raises(ValueError, match=r"'tiny-B' is one of the run's recordings but was "
                       r"not given; pass its Dataset too \(given: tiny-A\)"):
        sm.plot_run(trained_run, only_a, out=tmp_path, mouse="tiny-B")
    with pytest.raises(ValueError, match=r"none of the recordings given \(stranger\)"):
        sm.plot_run(trained_run, [stranger], out=tmp_path)
    assert not list(tmp_path.iterdir())
    paths = sm.plot_run(trained_run, list(only_a.values()), out=tmp_path / "a", device="cpu")
    alone = sm.plot_run(trained_run, [datasets["tiny-A"]], out=tmp_path / "alone", device="cpu")
    # the stranger changes nothing drawn: the figures equal those of tiny-A given alone
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in alone]
    # while the figures do depend on the data: tiny-A's traces are not tiny-B's
    traces = {p.name: p.read_bytes() for p in paths}["traces.png"]
    assert traces != drawn_for_b["traces.png"]
    assert pick_mouse(datasets, None) == "tiny-A" and pick_mouse(datasets, "tiny-B") == "tiny-B"


def test_a_run_without_a_finished_epoch_is_named(trained_run, datasets, tmp_path):
    import shutil

    run = shutil.copytree(trained_run, tmp_path / "run")
    (run / "best.pt").unlink()
    header = (run / "metrics.csv").read_text().splitlines()[0]
    (run / "metrics.csv").write_text(header + "\n")
    with pytest.raises(ValueError, match=r"has no finished epoch yet .* after its first epoch"):
        sm.plot_run(run, datasets)
    assert not (run / "figures").exists()


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


def test_readout_positions_follow_the_shifter_at_the_mean_pupil(trained_run, datasets):
    import dataclasses

    import numpy as np
    import torch

    from sensorium_models.figures import mean_pupil, readout_pixels

    model = sm.load_run(trained_run)
    with torch.no_grad():
        for p in model.shifters["tiny-A"].parameters():
            p.copy_(torch.linspace(-1, 1, p.numel()).reshape(p.shape))
    centred = readout_pixels(model, "tiny-A", (36, 64))
    np.testing.assert_array_equal(centred,
                                  readout_pixels(model, "tiny-A", (36, 64), pupil=np.zeros(2)))
    moved = readout_pixels(model, "tiny-A", (36, 64), pupil=np.array([3.0, -2.0]))
    shift = moved - centred
    assert np.abs(shift).max() > 0.1 and np.allclose(shift, shift[0])  # one shift, all neurons

    config = sm.read_config(trained_run)
    ds = datasets["tiny-A"]
    assert config.normalize == "official" and mean_pupil(ds, config) is None
    raw = mean_pupil(ds, dataclasses.replace(config, normalize="none"))
    train = ds["behavior"].values[ds["tier"].values == "train"][:, 2:4]
    np.testing.assert_allclose(raw, np.nanmean(train, axis=(0, 2)), rtol=1e-5)


def test_lr_decays_are_marked_only_for_the_plateau_schedule(tmp_path, monkeypatch):
    import matplotlib.axes

    from sensorium_models.figures import run_curves

    marks = []
    original = matplotlib.axes.Axes.axvline
    monkeypatch.setattr(matplotlib.axes.Axes, "axvline",
                        lambda self, x=0, *a, **k: marks.append(x) or original(self, x, *a, **k))
    metrics = pd.DataFrame({"epoch": [1, 2, 3, 4], "validation_correlation": [0.1, 0.2, 0.25, 0.3],
                            "train_loss": [4.0, 3.0, 2.5, 2.2],
                            "lr": [5e-3, 5e-3, 1.5e-3, 1.5e-3]})
    run_curves(metrics, tmp_path / "plateau.png", model="m", val_tier="oracle")
    assert marks == [2.5, 2.5]  # one decay, on both panels
    marks.clear()
    cosine = metrics.assign(lr=[5e-3, 4e-3, 2e-3, 5e-4])  # falls every epoch by design
    run_curves(cosine, tmp_path / "cosine.png", model="m", val_tier="oracle",
               schedule="warmup_cosine")
    assert marks == []
