"""scripts/learning_curve.py keeps the rows of earlier calls on the same --out."""
import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "learning_curve.py"


def _script():
    spec = importlib.util.spec_from_file_location("learning_curve", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_later_budget_adds_a_point_and_a_rerun_replaces_its_own(tmp_path):
    def row(modality, r, m, cpu, psnr):
        return {"modality": modality, "refocus_epochs": r, "merge_epochs": m, "cpu_min": cpu, "psnr": psnr}

    path = tmp_path / "learning_curve.json"
    first = [row("events", 2, 2, 4.0, 19.2), row("spikes", 2, 2, 4.1, 20.0), row("spikes", 18, 6, 28.3, 22.0)]
    path.write_text(json.dumps({"base": {}, "rows": first}))
    rows = _script().merged_rows(path, [row("spikes", 54, 18, 83.9, 21.6), row("spikes", 2, 2, 4.2, 20.1)])
    assert [(r["modality"], r["refocus_epochs"], r["psnr"]) for r in rows] == [
        ("events", 2, 19.2), ("spikes", 2, 20.1), ("spikes", 18, 22.0), ("spikes", 54, 21.6)]
    assert _script().merged_rows(tmp_path / "none.json", first[:1]) == first[:1]


def test_group_norm_rows_sit_beside_batch_norm_rows_of_the_same_budget(tmp_path):
    script = _script()
    old = {"modality": "spikes", "refocus_epochs": 18, "merge_epochs": 6, "cpu_min": 17.0, "psnr": 21.8}  # no norm key
    group = dict(old, norm="group", cpu_min=18.4, psnr=22.3)
    path = tmp_path / "learning_curve.json"
    path.write_text(json.dumps({"base": {}, "rows": [old]}))
    rows = script.merged_rows(path, [group])
    assert [script.label(r) for r in rows] == ["learned-sp", "learned-sp (group norm)"]
    assert [r["psnr"] for r in script.merged_rows(path, [dict(old, norm="batch", psnr=21.9)])] == [21.9]
    assert script.run_tag("spikes", 18, 6, "batch") == "sp-r18-m6"  # the names of runs made before the option
    assert script.run_tag("spikes", 18, 6, "group") == "sp-r18-m6-group"
