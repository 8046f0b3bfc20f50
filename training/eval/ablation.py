"""The ablation table (Table 3) from the evaluations of the ablation runs.

    python -m training.eval.ablation --eval-root runs/ablation_eval

``EVAL_ROOT/<run>/metrics.json`` (written by training.eval.evaluate) for the runs ``full``, ``no_modulation``,
``no_truncation``, ``no_aux`` and the single-task runs ``stl_semseg``, ``stl_depth``, ``stl_normals`` (which together
form the STL row); ``--extra LABEL=RUN`` adds rows (e.g. a second seed, to show the run-to-run spread). Writes
``EVAL_ROOT/ablation.md``: Table 3's layout, then every run in the full layout (a single-task run's untrained
tasks shown as "-").
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .tables import ablation_table, paper_table, stl_result

ROWS = (("MTL w.o. M_var M_inv (no modulation)", "no_modulation"), ("MTL w.o. Trunc", "no_truncation"),
        ("MTL w.o. Aux Heads", "no_aux"), ("Full MTPano", "full"))
SINGLE_TASK = {"semseg": "stl_semseg", "depth": "stl_depth", "normals": "stl_normals"}


METRIC_TASK = {"semseg": "semantic", "depth": "depth", "normals": "normals"}


def ablation_markdown(eval_root: Path | str, extra: tuple[tuple[str, str], ...] = ()) -> str:
    root = Path(eval_root)

    def total(run: str) -> dict:
        return json.loads((root / run / "metrics.json").read_text())["total"]

    stl = stl_result({task: total(run) for task, run in SINGLE_TASK.items()})
    rows = [(label, total(run)) for label, run in (*ROWS, *extra)]
    every = [(run, total(run)) for _, run in (*ROWS, *extra)]
    every += [(run, {METRIC_TASK[task]: total(run)[METRIC_TASK[task]]}) for task, run in SINGLE_TASK.items()]
    return ablation_table(rows, stl) + "\n" + paper_table(every)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Table 3 from the ablation runs' evaluations.")
    parser.add_argument("--eval-root", required=True)
    parser.add_argument("--extra", action="append", default=[], metavar="LABEL=RUN", help="an additional row")
    args = parser.parse_args(argv)
    text = ablation_markdown(args.eval_root, tuple(tuple(e.split("=", 1)) for e in args.extra))
    (Path(args.eval_root) / "ablation.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
