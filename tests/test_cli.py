"""The `sensorium` command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sensorium_data.cli import build_parser, main

COMMANDS = ["demo", "list", "info", "fetch", "convert", "simulate"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: sensorium " + command in capsys.readouterr().out


def test_the_parser_knows_every_command():
    text = build_parser().format_help()
    assert all(c in text for c in COMMANDS)


def test_list(capsys):
    assert main(["list", "--competition", "2023"]) == 0
    out = capsys.readouterr().out
    assert "29515-10-12" in out and "7863" in out and "scored" in out
    assert "26872-17-20" not in out


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
    out = subprocess.run([sys.executable, "-m", "sensorium_data.cli", "list"],
                         capture_output=True, text=True, check=True).stdout
    assert "dynamic29515-10-12-Video-9b4f6a1a067fe51e15306b9628efea20" in out


def test_demo_simulates_converts_and_summarises(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "trials per tier and stimulus type" in out
    assert "<xarray.Dataset>" in out and "NaturalVideo" in out
    stores = sorted((tmp_path / "stores").glob("*.zarr"))
    assert len(stores) == len(sorted((tmp_path / "trees").iterdir())) >= 1


def test_info_on_a_2022_recording(make_static_tree, data_dir, capsys):
    assert main(["info", str(make_static_tree())]) == 0
    out = capsys.readouterr().out
    assert "(2022)" in out and "final_test" in out and "image" in out
