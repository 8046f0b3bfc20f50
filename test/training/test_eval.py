"""Evaluation: metrics of a known predictor on a tiny case, the paper's tables, figures, the experiment configs."""
from pathlib import Path

import numpy as np
import pytest

from pano_perception.models.mtpano import MTPanoPrediction
from pano_perception.models.mtpano.config import CONFIGS as MODEL_CONFIGS
from training.eval.evaluate import evaluate
from training.eval.tables import ablation_table, paper_table, stl_result
from training.mtpano.config import load_config
from training.mtpano.datasets import SyntheticPanoramas

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


class _Oracle:
    """Predicts the ground truth, with depth scaled by ``depth_scale`` and a semantic class swapped."""

    def __init__(self, samples, depth_scale):
        self.by_rgb = {s.rgb.tobytes(): s for s in samples}
        self.depth_scale = depth_scale

    def predict(self, rgb):
        sample = self.by_rgb[rgb.tobytes()]
        semantic = sample.semantic.copy()
        semantic[semantic == 0] = 3  # every wall pixel called floor
        return MTPanoPrediction(semantic, sample.depth * self.depth_scale, sample.normals)


def test_evaluation_of_a_known_predictor(tmp_path):
    source = SyntheticPanoramas([3, 4], 16)
    samples = [source[0], source[1]]
    result = evaluate(_Oracle(samples, 1.1), samples, figures_dir=tmp_path, num_figures=1, progress=False)
    total = result["total"]
    assert total["depth"]["AbsRel"] == pytest.approx(0.1, rel=1e-5)
    assert total["depth"]["delta1"] == 100.0 and total["normals"]["mean"] == pytest.approx(0, abs=0.02)
    classes = {int(c) for s in samples for c in np.unique(s.semantic)}
    # wall gets IoU 0, floor IoU = floor / (floor + wall), every other class 1
    wall = sum(int((s.semantic == 0).sum()) for s in samples)
    floor = sum(int((s.semantic == 3).sum()) for s in samples)
    expected = (len(classes) - 2 + floor / (floor + wall)) / len(classes) * 100
    assert total["semantic"]["mIoU"] == pytest.approx(expected)
    per_class = result["iou_per_class"]
    assert per_class["wall"] == 0 and per_class["floor"] == pytest.approx(floor / (floor + wall) * 100, abs=0.01)
    assert len(per_class) == len(classes) and list(per_class.values()) == sorted(per_class.values(), reverse=True)
    assert len(result["images"]) == 2 and (tmp_path / "000.png").stat().st_size > 10_000
    assert not (tmp_path / "001.png").exists()

    table = paper_table([("Ours", total)])
    header, rule, row = table.strip().splitlines()
    assert header.startswith("| Method | mIoU ↑ | AbsRel ↓ | RMSE ↓ | δ1 ↑") and "< 30° ↑" in header
    assert row.startswith(f"| Ours | {expected:.2f} | 0.1000 |") and rule.count("---") == 12


def test_ablation_table_delta_mtl():
    def result(miou, rmse, mean):
        return {"semantic": {"mIoU": miou}, "depth": {"RMSE": rmse}, "normals": {"mean": mean}}

    stl = stl_result({"semseg": result(50.0, 9, 9), "depth": result(1, 0.2, 9), "normals": result(1, 9, 10.0)})
    assert stl == result(50.0, 0.2, 10.0)
    table = ablation_table([("Full", result(55.0, 0.18, 9.0))], stl)
    lines = table.strip().splitlines()
    assert lines[2] == "| STL | 50.00 | 0.2000 | 10.000 | +0.00 |"
    assert lines[3] == "| Full | 55.00 | 0.1800 | 9.000 | +10.00 |"  # (10 % + 10 % + 10 %) / 3


@pytest.mark.parametrize("path", sorted(p for p in CONFIGS.glob("*.yaml") if not p.name.startswith("sap_")),
                         ids=lambda p: p.name)
def test_experiment_configs_load(path):  # MTPano experiments; the sap_*.yaml ones are training.sap's
    config = load_config(path)
    assert config.optim.steps > 0 and config.data.cache
    assert config.model.config in MODEL_CONFIGS
    assert config.model.checkpoint_config in (None, *MODEL_CONFIGS)


def test_config_inheritance_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("model: {config: micro-cpu}\noptim: {lr: 0.001, steps: 10}\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\nname: child\noptim: {steps: 20}\n"
                                         "ablation: {tasks: [depth]}\n")
    config = load_config(tmp_path / "child.yaml", ["optim.batch_size=2", "run.out_dir=/tmp/x"])
    assert (config.name, config.model.config, config.optim.lr, config.optim.steps) == ("child", "micro-cpu", 0.001, 20)
    assert config.optim.batch_size == 2 and config.ablation.tasks == ("depth",) and config.optim.weight_decay == 5e-6
    with pytest.raises(ValueError, match="unknown OptimConfig"):
        load_config(None, ["optim.learning_rate=1"])
    with pytest.raises(ValueError, match="subset"):
        load_config(None, ["ablation.tasks=[edges]"])


def test_ablation_markdown_from_evaluation_folders(tmp_path):
    import json

    from training.eval.ablation import ablation_markdown

    def write(run, miou, rmse, mean):
        (tmp_path / run).mkdir()
        total = {"semantic": {"mIoU": miou}, "depth": {"AbsRel": 0.1, "RMSE": rmse}, "normals": {"mean": mean}}
        (tmp_path / run / "metrics.json").write_text(json.dumps({"total": total}))

    for run in ("full", "no_modulation", "no_truncation", "no_aux", "seed1"):
        write(run, 55.0, 0.18, 9.0)
    write("stl_semseg", 50.0, 99.0, 99.0)
    write("stl_depth", 1.0, 0.2, 99.0)
    write("stl_normals", 1.0, 99.0, 10.0)
    text = ablation_markdown(tmp_path, (("Full, seed 1", "seed1"),))
    assert "| STL | 50.00 | 0.2000 | 10.000 | +0.00 |" in text
    assert "| Full, seed 1 | 55.00 | 0.1800 | 9.000 | +10.00 |" in text
    assert "| stl_depth | - | 0.1000 | 0.2000 |" in text  # the untrained tasks of a single-task run: "-"
