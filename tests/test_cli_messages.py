"""Errors met through the `sensorium` command name the command and its flags; the same
errors met through the Python API name the Python call (sensorium_data.errors.Message)."""

from __future__ import annotations

import json
import os
import time

import pytest

import sensorium_data as sd
from sensorium_models.cli import main


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sensorium {argv[0]}: error: ") and "Traceback" not in err
    return err


def test_convert_into_another_recordings_store(make_tree, tmp_path, capsys):
    store = tmp_path / "s.zarr"
    sd.convert(make_tree(), store, progress=False)
    other = make_tree(n_neurons=5)
    err = _error(["convert", str(other), "--store", str(store)], capsys)
    assert "Choose another store path, or pass --overwrite to replace it." in err
    assert "overwrite=True" not in err
    with pytest.raises(sd.StoreError, match=r"or pass overwrite=True to replace it\.$"):
        sd.convert(other, store, progress=False)


def test_a_damaged_store_names_the_convert_command(make_tree, tmp_path, capsys):
    store = sd.convert(make_tree(), tmp_path / "s.zarr", progress=False)
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["competition"] = "2021"
    (store / "zarr.json").write_text(json.dumps(meta))
    err = _error(["info", str(store)], capsys)
    assert f"sensorium convert <tree or zip> --store {store} --overwrite" in err
    assert "sensorium_data.convert(" not in err
    with pytest.raises(sd.StoreError, match=r"sensorium_data\.convert\(<tree or zip>, "):
        sd.open_mouse(store)


def test_info_without_download_names_sensorium_fetch(data_dir, capsys):
    err = _error(["info", "F", "--no-download"], capsys)
    assert "Download it first (sensorium fetch F), or point $SENSORIUM_DATA_DIR" in err
    assert "download=" not in err and "fetch_mouse" not in err
    with pytest.raises(FileNotFoundError, match=r"download=False. Call "
                       r"sensorium_data.fetch_mouse\('F'\) first, pass download=True, or"):
        sd.open_mouse("F", download=False)


def test_an_unknown_mouse_points_to_sensorium_list(data_dir, capsys):
    err = _error(["fetch", "K"], capsys)
    assert err.rstrip().endswith("; see sensorium list")
    with pytest.raises(KeyError, match=r"see sensorium_data\.list_mice\(\)$"):
        sd.fetch_mouse("K")


def test_simulate_over_a_recording(tmp_path, capsys):
    sd.simulate(tmp_path, scale=0.05, progress=False)
    err = _error(["simulate", str(tmp_path), "--scale", "0.05"], capsys)
    assert "already holds a recording; pass --overwrite to replace it" in err
    err = _error(["simulate", str(tmp_path / "x"), "--preset", "sensorium2023", "--scale", "2"],
                 capsys)
    assert "error: --scale 2.0 is too large for the sensorium2023 preset" in err


def test_train_into_a_run_names_resume(trained_run, capsys):
    err = _error(["train", "--out", str(trained_run), "--mice", "x.zarr"], capsys)
    assert (f"already holds a run; continue it with sensorium train --resume {trained_run}, "
            "or pass another --out.") in err
    assert "resume=" not in err


def test_resume_of_a_finished_run_names_max_epochs(trained_run, capsys, caplog):
    before = (trained_run / "last.pt").read_bytes()
    with caplog.at_level("WARNING", logger="sensorium_models.training.run"):
        assert main(["train", "--resume", str(trained_run), "--set", "score=false"]) == 0
    assert (f"{trained_run} is finished: it has run max_epochs=2 epochs; pass a larger "
            "--max-epochs to train it longer; nothing to resume") in caplog.text
    assert (trained_run / "last.pt").read_bytes() == before


def test_plot_into_figures_names_overwrite(trained_run, tmp_path, capsys):
    (tmp_path / "traces.png").write_bytes(b"")
    err = _error(["plot", str(trained_run), "--out", str(tmp_path)], capsys)
    assert "pass another folder as --out, or --overwrite to replace them." in err


def test_submit_over_a_submission_names_overwrite(trained_run, tmp_path, capsys):
    (tmp_path / "submission_main.zip").write_bytes(b"")
    err = _error(["submit", str(trained_run), "--out", str(tmp_path)], capsys)
    assert "already exist (an earlier submission?); pass another folder, or --overwrite" in err
    assert "overwrite=True" not in err



@pytest.mark.parametrize(("flags", "named"), [
    (["--set", "lr=inf"], "it must be a finite number (default 0.005, e.g. --set lr=0.005)."),
    (["--fold", "9"], "the folds are 0 to 6. Pass --fold K with K in that range"),
    (["--set", "lrr=1"], "e.g. --set model_config.hidden_channels=[16,32])."),
])
def test_train_config_errors_name_the_flags(flags, named, tmp_path, capsys):
    err = _error(["train", "--mice", "F", "--out", str(tmp_path / "run"), *flags], capsys)
    assert named in err
    assert not (tmp_path / "run").exists()


def test_a_logged_warning_names_the_command_too(make_tree, tmp_path, capsys, caplog):
    tree = make_tree()
    store = sd.convert(tree, tmp_path / "s.zarr", progress=False)
    later = time.time() + 10
    os.utime(tree / "data/responses/0.npy", (later, later))  # as if edited in place
    with caplog.at_level("WARNING"):
        assert main(["convert", str(tree), "--store", str(store)]) == 0
    assert f"Convert again with sensorium convert {tree} --store {store} --overwrite" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        sd.convert(tree, store, progress=False)
    assert f"sensorium_data.convert('{tree}', '{store}', overwrite=True)" in caplog.text


def test_an_ensemble_of_another_model_names_the_flag(tmp_path, capsys):
    err = _error(["train", "--ensemble", "v1fm31", "--model", "ln", "--mice", "F",
                  "--out", str(tmp_path / "e")], capsys)
    assert ("is made of dynamic_v1fm models, but the config's model is 'ln'; pass --model "
            "dynamic_v1fm.") in err
