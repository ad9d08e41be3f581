"""train_ensemble: members trained one by one under one folder, resumable, averaged by predict."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import sensorium_data as sd
import sensorium_models as sm
from sensorium_models.cli import build_parser, main
from sensorium_models.training import ensembles
from sensorium_models.training.config import ConfigError

TINY_V1FM = {"emb_dim": 8, "num_heads": 2, "mlp_dim": 8, "num_blocks": 1}
TWO = ["mean-2_4_8_16", "adaptive-0"]


def toy_config(stores: list[Path], out: Path) -> sm.TrainConfig:
    return sm.TrainConfig(
        model="dynamic_v1fm", mice=(str(stores[0]),), model_config=TINY_V1FM,
        frames=30, batch_size=4, pupil_channels=True, max_epochs=1, device="cpu",
        progress=False, score=False, out=str(out),
    )


def test_the_v1fm31_members():
    members = ensembles.ensemble_members("v1fm31")
    assert len(members) == 31
    assert sum(m["fusion"] == "mean" for m in members.values()) == 15
    assert "mean-0" not in members and members["adaptive-0"] == {"fusion": "adaptive",
                                                                  "levels": "0"}
    # the CLI names the strategies without importing torch
    assert list(ensembles.STRATEGIES) == ["v1fm31", "folds7"]
    for name in ensembles.STRATEGIES:
        assert build_parser().parse_args(["train", "--ensemble", name]).ensemble == name


def test_two_members_train_resume_and_ensemble(simulated_stores, tmp_path, monkeypatch):
    calls = []
    real_train = ensembles.train

    def counting_train(config, resume=None):
        calls.append((Path(config.out).name, resume is not None))
        return real_train(config, resume=resume)

    monkeypatch.setattr(ensembles, "train", counting_train)
    config = toy_config(simulated_stores, tmp_path / "v1fm")
    runs = ensembles.train_ensemble(config, "v1fm31", members=TWO)
    assert [r.name for r in runs] == TWO and calls == [(TWO[0], False), (TWO[1], False)]
    for run, (fusion, levels) in zip(runs, (("mean", "2_4_8_16"), ("adaptive", "0")),
                                     strict=True):
        saved = sm.read_config(run)
        assert (saved.model_config["fusion"], saved.model_config["levels"]) == (fusion, levels)
        assert saved.model_config["emb_dim"] == 8 and saved.max_epochs == 1
    manifest = json.loads((tmp_path / "v1fm" / "ensemble.json").read_text())
    assert manifest["done"] == TWO and manifest["strategy"] == "v1fm31"

    calls.clear()  # again: both finished, nothing trains
    assert ensembles.train_ensemble(config, "v1fm31", members=TWO) == runs and calls == []
    manifest["done"] = TWO[:1]  # as if stopped during the second member: it resumes
    (tmp_path / "v1fm" / "ensemble.json").write_text(json.dumps(manifest))
    ensembles.train_ensemble(config, "v1fm31", members=TWO)
    assert calls == [(TWO[1], True)]

    ds = sd.open_mouse(simulated_stores[0])
    datasets = {str(simulated_stores[0]): ds}
    both = sm.predict(runs, datasets, tiers="oracle", device="cpu")
    one = sm.predict(runs[:1], datasets, tiers="oracle", device="cpu")
    other = sm.predict(runs[1:], datasets, tiers="oracle", device="cpu")
    (mouse, values), = both.items()
    # whole trials through the 30-frame windows: every frame after the burn-in predicted
    n = int(ds["n_frames"].sel(trial=values.trial[0]))
    assert int(values.isel(trial=0).notnull().all("neuron").sum()) == n - 15
    mean = (one[mouse] + other[mouse]) / 2
    assert float(abs(values - mean).max()) < 1e-5


def test_a_folder_of_another_ensemble_or_config_is_refused(simulated_stores, tmp_path):
    config = toy_config(simulated_stores, tmp_path / "v1fm")
    (tmp_path / "v1fm").mkdir()
    (tmp_path / "v1fm" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"v1fm is not empty and holds no ensemble.json"):
        ensembles.train_ensemble(config, "v1fm31", members=[])
    config = dataclasses.replace(config, out=str(tmp_path / "fresh"))
    assert ensembles.train_ensemble(config, "v1fm31", members=[]) == []
    with pytest.raises(ConfigError, match=r"started with another config \(differing: lr\)"):
        ensembles.train_ensemble(dataclasses.replace(config, lr=0.1), "v1fm31", members=[])
    with pytest.raises(ValueError, match=r"unknown ensemble 'v1fm32'; choose one of v1fm31"):
        ensembles.train_ensemble(config, "v1fm32")
    with pytest.raises(ValueError, match=r"unknown member 'mean-0' of 'v1fm31'; its members: "
                                         r"mean-2_4_8_16, "):
        ensembles.train_ensemble(config, "v1fm31", members=["mean-0"])
    with pytest.raises(ConfigError, match=r"made of dynamic_v1fm models, but the config's "
                                          r"model is 'ln'; pass model='dynamic_v1fm'"):
        ensembles.train_ensemble(dataclasses.replace(config, model="ln"), "v1fm31")


def test_the_cli_option(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--model", "dynamic_v1fm", "--ensemble", "v1fm32"])
    assert "invalid choice: 'v1fm32' (choose from 'v1fm31', 'folds7')" in capsys.readouterr().err
    assert main(["train", "--ensemble", "v1fm31", "--resume", "runs/x"]) != 0
    assert "--ensemble with --resume: run the same" in capsys.readouterr().err


def test_a_fold_ensemble_trains_one_member_per_fold(simulated_stores, tmp_path):
    assert list(ensembles.ensemble_members("folds7")) == [f"fold-{k}" for k in range(7)]
    config = sm.TrainConfig(model="ln", mice=tuple(str(s) for s in simulated_stores[:2]),
                            frames=20, batch_size=4, max_epochs=1, device="cpu",
                            progress=False, score=False, out=str(tmp_path / "f7"))
    runs = ensembles.train_ensemble(config, "folds7", members=["fold-0", "fold-3"])
    assert [r.name for r in runs] == ["fold-0", "fold-3"]
    assert [(sm.read_config(r).fold, sm.read_config(r).folds) for r in runs] == [(0, 7), (3, 7)]
    datasets = [sd.open_mouse(s) for s in simulated_stores[:2]]
    one = sm.predict(runs[:1], datasets, tiers=["oracle"])
    both = sm.predict(runs, datasets, tiers=["oracle"])  # the members' mean
    second = sm.predict(runs[1:], datasets, tiers=["oracle"])
    for mouse, p in both.items():
        np.testing.assert_allclose(p.values, (one[mouse].values + second[mouse].values) / 2,
                                   rtol=1e-5, atol=1e-6)


def test_a_fold_teacher_is_the_members_own_fold(tmp_path):
    config = sm.TrainConfig(model="dwiseneuro_distilled", teacher="runs/stage1/fold-{fold}",
                            mixed_mice=True)
    member = ensembles._member_config(config, tmp_path / "fold-4", {"fold": 4, "folds": 7},
                                      "config")
    assert (member.teacher, member.fold, member.out) == ("runs/stage1/fold-4", 4,
                                                         str(tmp_path / "fold-4"))

