"""The ablation table (Table 3) from the evaluations of the ablation runs.

    python -m training.eval.ablation --eval-root runs/ablation_eval

``EVAL_ROOT/<run>/metrics.json`` (written by training.eval.evaluate) for the runs ``full``, ``no_modulation``,
``no_truncation``, ``no_aux`` and the single-task runs ``stl_semseg``, ``stl_depth``, ``stl_normals`` (which together
form the STL row). Writes ``EVAL_ROOT/ablation.md``: Table 3's layout, then every run in the full layout.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .tables import ablation_table, paper_table, stl_result

ROWS = (("MTL w.o. M_var M_inv (no modulation)", "no_modulation"), ("MTL w.o. Trunc", "no_truncation"),
        ("MTL w.o. Aux Heads", "no_aux"), ("Full MTPano", "full"))
SINGLE_TASK = {"semseg": "stl_semseg", "depth": "stl_depth", "normals": "stl_normals"}


def ablation_markdown(eval_root: Path | str) -> str:
    root = Path(eval_root)

    def total(run: str) -> dict:
        return json.loads((root / run / "metrics.json").read_text())["total"]

    stl = stl_result({task: total(run) for task, run in SINGLE_TASK.items()})
    rows = [(label, total(run)) for label, run in ROWS]
    every = [(run, total(run)) for _, run in ROWS] + [(run, total(run)) for run in SINGLE_TASK.values()]
    return ablation_table(rows, stl) + "\n" + paper_table(every)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Table 3 from the ablation runs' evaluations.")
    parser.add_argument("--eval-root", required=True)
    args = parser.parse_args(argv)
    text = ablation_markdown(args.eval_root)
    (Path(args.eval_root) / "ablation.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
