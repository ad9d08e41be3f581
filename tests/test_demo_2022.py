"""``sensorium demo --track 2022`` (quick): the static twin simulated, converted, both 2022
baselines trained and scored, the table printed beside the twin's ceiling."""

from __future__ import annotations

import json

from sensorium_models.cli import main


def test_the_2022_demo_trains_both_baselines_and_prints_the_table(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--track", "2022", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sota_2022    ln_2022    ceiling" in printed
    for mouse in ("static2022-A", "static2022-B", "static2022-C"):
        assert f"{mouse}  single_trial_correlation" in printed
    summary = json.loads((out / "results.json").read_text())
    assert summary["preset"] == "static2022" and set(summary["results"]) == {
        "sota_2022", "ln_2022"}
    rows = summary["results"]["sota_2022"]
    assert {r["tier"] for r in rows} >= {"validation", "test"}
    assert all("single_trial_correlation_ceiling" in r for r in rows)
    assert (out / "runs" / "ln_2022" / "best.pt").is_file()
