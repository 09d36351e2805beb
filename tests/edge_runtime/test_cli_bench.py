"""`edgernn bench`: one run gives a table, a JSON file and a chart, and judges the issue's targets."""

from __future__ import annotations

import json

from edge_runtime.cli.bench import check_targets
from edgernn.cli import main
from tests.edge_runtime.conftest import make_model, numpy_bundle


def test_bench_writes_table_json_and_chart(tmp_path, capsys):
    bundle = numpy_bundle(tmp_path / "b", make_model(cell="lstm", num_layers=2))
    out = tmp_path / "bench"
    args = ["bench", str(bundle), "--sizes", "1,8", "--rounds", "2", "--burst", "0.002", "--out", str(out)]
    assert main([*args, "--no-footprint", "--no-progress"]) == 0
    report = json.loads((out / "bench.json").read_text())
    for art in ("numpy-fp32", "numpy-int8"):
        for key in ("raw|1", "step_one|1", "raw_many|8", "step_many|8"):
            assert report["results"][f"{art}|{key}"]["us"] > 0
    assert report["results"]["pytorch-eager|raw|1"]["us"] > 0
    assert (out / "bench.png").stat().st_size > 1000
    table = capsys.readouterr().out
    assert "numpy-fp32" in table and "targets" not in table and "NOT MET" not in table  # internal goals: JSON only
    names = [t["target"] for t in report["targets"]]
    assert any(n.startswith("step_one") for n in names) and any("step_many at N=8" in n for n in names)


def test_targets_are_judged_on_the_figures():
    res = {
        "numpy-fp32|raw|1": {"us": 20.0},
        "numpy-fp32|step_one|1": {"us": 28.0},
        "tflite-fp32|raw|1": {"us": 12.0},
        "tflite-fp32|step_one|1": {"us": 30.0},
        "pytorch-eager|raw|1": {"us": 400.0},
        "numpy-fp32|raw_many|64": {"per_s": 1000.0},
        "numpy-fp32|step_many|64": {"per_s": 950.0},
    }
    got = {t["target"].split(" (")[0]: t for t in check_targets(res, ["numpy-fp32", "tflite-fp32"], [64], {})}
    assert got["step_one"]["value"] == round(28 / 12, 4) and not got["step_one"]["met"]
    assert got["PyTorch eager step vs step_one"]["met"]  # 400 / 28 = 14x
    assert got["NumPy fp32 raw call vs TFLite fp32 raw call, batch 1"]["met"]  # 1.67x
    assert got["step_many at N=64"]["value"] == 0.95 and got["step_many at N=64"]["met"]


def test_bench_runs_token_and_window_bundles(tmp_path):
    tokens = make_model(cell="gru", vocab_size=6, embedding_dim=3, output_size=6, task="generate")
    window = make_model(cell="gru", bidirectional=True)
    for name, bundle in (
        ("tokens", numpy_bundle(tmp_path / "t", tokens, task="generate")),
        ("window", numpy_bundle(tmp_path / "w", window, window=6)),
    ):
        out = tmp_path / f"bench-{name}"
        args = ["bench", str(bundle), "--sizes", "4", "--rounds", "1", "--burst", "0.001", "--out", str(out)]
        assert main([*args, "--no-footprint", "--no-progress"]) == 0
        results = json.loads((out / "bench.json").read_text())["results"]
        assert results["numpy-fp32|step_many|4"]["us"] > 0


def test_bench_without_out_prints_and_leaves_the_working_directory_alone(tmp_path, capsys, monkeypatch):
    bundle = numpy_bundle(tmp_path / "b", make_model())
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    args = ["bench", str(bundle), "--sizes", "1", "--rounds", "1", "--burst", "0.001", "--no-footprint"]
    assert main([*args, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "numpy-fp32" in out and "--out DIR writes" in out and "targets" not in out
    assert list(cwd.iterdir()) == []
