"""The `sensorium` command line: every verb's help, the data verbs and the model verbs."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import xarray as xr

import sensorium_models as sm
from sensorium_data.store import quiet_zarr
from sensorium_models.cli import build_parser, main, run_datasets
from tests.conftest import TINY_FACTORIZED, shifted_copy

COMMANDS = ["demo", "simulate", "fetch", "convert", "cache", "info", "list", "train", "evaluate",
            "compare", "plot", "predict", "submit"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "usage: sensorium " + command in out
    assert f"examples:\n  sensorium {command}" in out


def test_train_help_lists_the_registered_models(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"one of {', '.join(sm.list_models())} (docs/models.md" in out


def test_train_help_reads_the_registry_when_shown(capsys, monkeypatch):
    from sensorium_models.models import registry

    parser = build_parser()  # built before the model exists: the list is not fixed then
    monkeypatch.setitem(registry._MODELS, "a_new_model", lambda: None)
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    assert "a_new_model" in " ".join(capsys.readouterr().out.split())


def test_help_does_not_import_torch():
    code = ("import sys\nfrom sensorium_models.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nprint(sorted(m for m in sys.modules if m == 'torch'"
            " or m.startswith('sensorium_models.models')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "usage: sensorium" in out
    assert out.strip().endswith("[]")  # neither torch nor a model file was imported


def test_the_parser_knows_every_command_in_order():
    text = build_parser().format_help()
    positions = [text.index(f"    {c} ") for c in COMMANDS]
    assert positions == sorted(positions)


def test_list(capsys):
    assert main(["list", "--competition", "2023"]) == 0
    out = capsys.readouterr().out
    assert "29515-10-12" in out and "7863" in out and "scored" in out
    assert "26872-17-20" not in out


def test_list_says_what_the_cache_holds_and_the_sizes(tmp_path, capsys):
    name = "dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20"
    (tmp_path / "stores" / f"{name}.zarr").mkdir(parents=True)
    (tmp_path / "stores" / f"{name}.zarr" / "chunk").write_bytes(b"x" * 250_000_000)
    assert main(["list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert " ".join(out.splitlines()[0].split()) == ("competition letter short name neurons set "
                                                    "extracted in cache cached folder")
    rows = {line.split()[2]: " ".join(line.split()) for line in out.splitlines()[1:11]}
    assert rows["29515-10-12"].endswith(f"scored ~18.9 GB store 0.2 GB {name}")
    assert rows["29623-4-9"].endswith("scored ~18.2 GB - - "
                                      "dynamic29623-4-9-Video-9b4f6a1a067fe51e15306b9628efea20")
    assert " ".join(out.splitlines()[11].split()).startswith("2022 26872-17-20 7776 SENSORIUM - -")
    assert f"cache: {tmp_path} (store: converted" in out
    assert "extracted: the size of the unpacked files, computed from the format" in out


def test_fetch_states_the_size_first_and_refuses_a_small_disk(tmp_path, capsys, monkeypatch):
    import sensorium_data
    from sensorium_data import cli as data_cli

    fetched = []
    monkeypatch.setattr(sensorium_data, "fetch_mouse",
                        lambda mouse, data_dir: fetched.append(mouse) or f"trees/{mouse}")
    monkeypatch.setattr(data_cli, "free_bytes", lambda folder: 10_000_000_000)
    assert main(["fetch", "F", "--data-dir", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == (f"F: ~18.9 GB extracted (computed from the format; the zip, kept beside the "
                   f"files, comes on top: its size is not published), 10.0 GB free in "
                   f"{tmp_path}\n")
    assert err == (f"sensorium fetch: error: F needs at least ~18.9 GB for its extracted files "
                   f"(its zip, kept beside them, comes on top), but {tmp_path} has 10.0 GB free. "
                   "Free some space, fetch into a cache on a larger disk (--data-dir DIR or "
                   "$SENSORIUM_DATA_DIR), or pass --force to try anyway.\n")
    assert fetched == []
    assert main(["fetch", "F", "A", "--data-dir", str(tmp_path), "--force"]) == 0
    assert fetched == ["F", "A"]
    assert "A: ~9.1 GB extracted" in capsys.readouterr().out


def test_convert_then_info(make_tree, tmp_path, data_dir, capsys):
    tree = make_tree()
    assert main(["convert", str(tree), "--store", str(tmp_path / "s.zarr")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "s.zarr")
    assert main(["info", str(tmp_path / "s.zarr")]) == 0
    out = capsys.readouterr().out
    assert "trials per tier and stimulus type" in out
    assert "final_test_bonus" in out and "withheld" in out


def test_errors_are_one_clear_line(data_dir, capsys):
    assert main(["info", "K"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sensorium info: error: unknown mouse 'K'")
    assert "Traceback" not in err


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "sensorium_models.cli", "list"],
                         capture_output=True, text=True, check=True).stdout
    assert "dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20" in out


def test_the_data_verbs_run_without_the_model_package():
    code = ("import sys, sensorium_data.cli as c; c.main(['list']); "
            "assert not any(m.startswith('sensorium_models') for m in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "29515-10-12" in out


def test_info_on_a_2022_recording(make_static_tree, data_dir, capsys):
    assert main(["info", str(make_static_tree())]) == 0
    out = capsys.readouterr().out
    assert "(2022)" in out and "final_test" in out and "image" in out


def test_train_then_resume(simulated_stores, tmp_path, capsys):
    run = tmp_path / "run"
    channels = ",".join(map(str, TINY_FACTORIZED["hidden_channels"]))
    args = ["train", "--model", "factorized_baseline", "--mice", str(simulated_stores[0]),
            "--out", str(run), "--max-epochs", "1", "--set", "batch_size=4",
            "--set", "progress=false", "--set", f"model_config.hidden_channels=[{channels}]"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"run directory: {run}" in out and "1 epochs; best oracle correlation" in out
    assert "leaderboard table of the best model" in out and "single_trial" in out
    config = sm.read_config(run)
    assert config.batch_size == 4 and config.model_config["hidden_channels"] == [4, 8, 8]
    assert main(["train", "--resume", str(run), "--max-epochs", "2", "--set", "score=false"]) == 0
    assert "2 epochs" in capsys.readouterr().out
    assert pd.read_csv(run / "metrics.csv")["epoch"].tolist() == [1, 2]


def test_train_errors_are_one_line(simulated_stores, tmp_path, capsys):
    mouse = str(simulated_stores[0])
    assert main(["train", "--model", "resnet", "--mice", mouse]) == 2
    assert capsys.readouterr().err.startswith(
        "sensorium train: error: unknown model 'resnet'; known models: "
        f"{', '.join(sm.list_models())}.")
    assert main(["train", "--mice", mouse, "--set", "lrr=1"]) == 2
    assert "error: unknown config key 'lrr'; valid keys:" in capsys.readouterr().err
    assert main(["train", "--mice", mouse, "--set", "lr"]) == 2
    assert "--set 'lr': write key=value" in capsys.readouterr().err


def test_train_resume_with_another_config_is_refused(trained_run, capsys):
    assert main(["train", "--resume", str(trained_run), "--set", "lr=0.1"]) == 2
    err = capsys.readouterr().err
    assert "error: cannot resume" in err and "differing keys: lr: run 0.005, now 0.1" in err


def test_evaluate_prints_the_leaderboard_table(trained_run, tmp_path, capsys):
    assert main(["evaluate", str(trained_run), "--tiers", "oracle", "live_test_main",
                 "--out", str(tmp_path / "scores.csv")]) == 0
    out = capsys.readouterr().out
    assert "single_trial" in out and "ceiling" in out and "live_test_main" in out
    table = pd.read_csv(tmp_path / "scores.csv")
    assert set(table["tier"]) == {"oracle", "live_test_main"}
    args = ["evaluate", str(trained_run), "--tiers", "oracle",
            "--out", str(tmp_path / "scores.csv")]
    assert main(args) == 2
    assert "scores.csv exists; pass a new path, or --overwrite" in capsys.readouterr().err
    assert set(pd.read_csv(tmp_path / "scores.csv")["tier"]) == {"oracle", "live_test_main"}
    assert main([*args, "--overwrite"]) == 0
    assert set(pd.read_csv(tmp_path / "scores.csv")["tier"]) == {"oracle"}


def test_evaluate_ensembles_several_runs(trained_run, tmp_path, capsys):
    other = shifted_copy(trained_run, tmp_path / "other", by=-1.0)
    tables = {}
    for name, runs in {"one": [trained_run], "other": [other],
                       "both": [trained_run, other]}.items():
        path = tmp_path / f"{name}.csv"
        assert main(["evaluate", *map(str, runs), "--tiers", "oracle", "--out", str(path)]) == 0
        tables[name] = pd.read_csv(path).set_index(["mouse", "stimulus_type"])
    capsys.readouterr()
    column = "single_trial_correlation"
    assert not tables["both"][column].equals(tables["one"][column])
    assert not tables["both"][column].equals(tables["other"][column])


def test_compare_prints_runs_side_by_side(trained_run, tmp_path, capsys):
    other = shifted_copy(trained_run, tmp_path / "shifted", by=-1.0)
    out = tmp_path / "compare.csv"
    assert main(["compare", str(trained_run), str(other), "--tiers", "oracle",
                 "--scale", "raw", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(raw scale)" in printed and "different recordings" not in printed
    header = printed.splitlines()[3].split()
    assert header == [trained_run.name, "shifted", "ceiling", trained_run.name, "shifted",
                      "ceiling"]
    table = pd.read_csv(out)
    assert list(table["tier"]) == ["oracle"]
    one = table[f"single_trial_correlation:{trained_run.name}"].iloc[0]
    two = table["single_trial_correlation:shifted"].iloc[0]
    assert one != two and -1 < one < 1 and -1 < two < 1
    assert main(["compare", str(trained_run), str(other), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["compare", str(trained_run), str(trained_run)]) == 2
    assert "a run is named twice" in capsys.readouterr().err


def test_unknown_tiers_and_bad_batch_sizes_are_named(trained_run, tmp_path, capsys):
    path = tmp_path / "p.zarr"
    assert main(["predict", str(trained_run), "--out", str(path), "--tiers", "orcale"]) == 2
    err = capsys.readouterr().err
    assert "no recording has trials of tier(s) ['orcale']; their tiers: [" in err
    assert "'oracle'" in err and not path.exists()
    assert main(["evaluate", str(trained_run), "--tiers", "orcale"]) == 2
    assert "['orcale']" in capsys.readouterr().err
    for value in ("0", "-2", "eight"):
        with pytest.raises(SystemExit):
            main(["evaluate", str(trained_run), "--batch-size", value])
        assert "argument --batch-size:" in capsys.readouterr().err
    with pytest.raises(ValueError, match="batch_size=0; pass a positive integer"):
        sm.predict(trained_run, run_datasets(str(trained_run), None), batch_size=0)


def test_predict_writes_one_group_per_mouse(trained_run, tmp_path, capsys):
    path = tmp_path / "predictions.zarr"
    assert main(["predict", str(trained_run), "--out", str(path), "--tiers", "oracle"]) == 0
    assert capsys.readouterr().out.strip() == str(path)
    mice = sm.load_run(trained_run).mice
    with quiet_zarr():
        values = xr.open_zarr(path, group=mice[0])["predictions"]
    assert values.dims == ("trial", "neuron", "frame") and set(values["tier"].values) == {
        "oracle"}
    both = tmp_path / "both.zarr"
    assert main(["predict", str(trained_run), "--out", str(both), "--tiers", "oracle",
                 "live_test_main"]) == 0
    with quiet_zarr():  # as docs/training.md reads one back
        p = xr.open_dataset(both, group=mice[0], engine="zarr")["predictions"]
    assert p["tier"].dtype.kind == "U"  # plain strings
    assert set(p.where(p.tier == "oracle", drop=True)["tier"].values) == {"oracle"}
    capsys.readouterr()
    assert main(["predict", str(trained_run), "--out", str(path)]) == 2
    assert "exists; pass a new path" in capsys.readouterr().err


def test_submit_writes_valid_files(trained_run, simulated_stores, tmp_path, capsys):
    import sensorium_data as sd

    assert main(["submit", str(trained_run), "--out", str(tmp_path), "--track", "bonus"]) == 0
    written = capsys.readouterr().out.split()
    assert any(p.endswith("predictions_final_test_bonus_ood.parquet.brotli") for p in written)
    datasets = [sd.open_mouse(s) for s in simulated_stores]
    assert sm.validate_submission(tmp_path, datasets) == []
    assert main(["submit", str(trained_run), "--out", str(tmp_path), "--track", "bonus"]) == 2
    assert "already exist (an earlier submission?)" in capsys.readouterr().err
    assert main(["submit", str(trained_run), "--out", str(tmp_path), "--track", "bonus",
                 "--overwrite"]) == 0


def test_evaluate_names_its_scale_and_the_calibration(trained_run, tmp_path, capsys):
    for scale in ("raw", "official"):
        path = tmp_path / f"{scale}.csv"
        assert main(["evaluate", str(trained_run), "--tiers", "oracle", "--scale", scale,
                     "--out", str(path)]) == 0
        out = capsys.readouterr().out
        assert f"leaderboard table ({scale} scale; calibration: predicted mean / recorded" in out
        assert "calibration" in out.splitlines()[2]
    raw, official = (pd.read_csv(tmp_path / f"{s}.csv") for s in ("raw", "official"))
    assert not raw["single_trial_correlation"].equals(official["single_trial_correlation"])
    pd.testing.assert_series_equal(raw["calibration"], official["calibration"])  # raw in both
