"""``pano-perception synth`` smoke test (the subcommand is driven through argparse like the main dispatcher)."""
import argparse
import json

import pytest
from rosbags.rosbag2 import Reader

from pano_perception.cli import synth
from pano_perception.synthetic.dataset import SyntheticPanoramaDataset


def _run(argv):
    parser = argparse.ArgumentParser(prog="pano-perception")
    sub = parser.add_subparsers(dest="command", required=True)
    synth.add_parser(sub).set_defaults(_run=synth.run)
    args = parser.parse_args(argv)
    return args._run(args)


def test_synth_writes_a_dataset_and_a_bag(tmp_path, capsys):
    out, bag = tmp_path / "data", tmp_path / "bag"
    assert _run(["synth", "--scenes", "2", "--size", "32x16", "--out", str(out), "--seed", "5",
                 "--views-per-scene", "2", "--jpeg", "--bag", str(bag), "--bag-frames", "3",
                 "--storage", "sqlite3", "--no-shadows"]) == 0
    index = json.loads((out / "dataset.json").read_text())
    assert index["height"] == 16 and index["rgb"] == "jpg" and len(index["frames"]) == 4
    assert len(SyntheticPanoramaDataset(out)) == 4
    assert (out / "scene_000006" / "rgb" / "001.jpg").exists()
    with Reader(bag) as reader:
        assert reader.message_count == 1 + 3 * 8
        images = [c for c in reader.connections if c.topic == "/camera/image"]
        assert images and images[0].msgcount == 3
    assert "synth" in capsys.readouterr().err  # the tqdm progress bar


def test_synth_rejects_bad_sizes(tmp_path):
    with pytest.raises(SystemExit):
        _run(["synth", "--size", "100x100", "--out", str(tmp_path)])
    with pytest.raises(ValueError):
        _run(["synth", "--scenes", "-1", "--out", str(tmp_path)])
