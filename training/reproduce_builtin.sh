#!/usr/bin/env bash
# Reproduces the built-in MTPano weights (pano_perception/data/mtpano_micro_cpu_p8.safetensors), their evaluation and
# the ablation table of docs/TRAINING.md on CPU. About 6 hours on a shared 2-core machine; every step resumes or
# skips finished work when run again. Run from anywhere; paths are relative to the repository root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-.venv/bin/python}"
EVAL_DATA=synthetic-dataset:runs/data/synthetic128_eval

# 1. Pseudo-labels: 400 synthetic panoramas (scene seeds 1000-1399) at 128 x 256, 32 oracle crops of 128^2 pixels
#    each, re-projected to ERP patches (~10 min, 2 GB, resumable shards).
"$PY" -m training.mtpano.pseudo_labels --source synthetic:1000-1399@128 --out runs/cache/synthetic128_train \
    --erp-height 128 --num-crops 32 --crop-size 128 --shard-size 16 --threads 1
# 2. Held-out panoramas with exact ERP ground truth (scene seeds 90000-90047; never used in training).
[ -f runs/data/synthetic128_eval/dataset.json ] || \
    "$PY" -m pano_perception.cli.main synth --scenes 48 --size 256x128 --seed 90000 --out runs/data/synthetic128_eval
# 3. The default model: micro-cpu stage 1 (1400 steps, ~35 min), stage 2 from its weights (3000 steps, ~85 min),
#    stage 3 from stage 2's (4000 steps, ~60 min); then micro-cpu-p8 (8-pixel patches) started from stage 3's
#    weights through training/mtpano/patch_transfer.py (3000 steps, ~60 min), and the evaluation.
"$PY" -m training.mtpano.train --config training/configs/micro_cpu_synthetic.yaml
"$PY" -m training.mtpano.train --config training/configs/micro_cpu_synthetic_stage2.yaml
"$PY" -m training.mtpano.train --config training/configs/micro_cpu_synthetic_stage3.yaml
"$PY" -m training.mtpano.train --config training/configs/micro_cpu_p8_synthetic.yaml
cp runs/micro_cpu_p8_synthetic/model.safetensors pano_perception/data/mtpano_micro_cpu_p8.safetensors
"$PY" -m training.eval.evaluate --config micro-cpu-p8 --weights pano_perception/data/mtpano_micro_cpu_p8.safetensors \
    --data "$EVAL_DATA" --out runs/eval/builtin --name "MTPano micro-cpu-p8 (built-in)" --figures 8 --threads 1
# 4. Ablations at an equal budget of 800 steps each (~10-12 min each), the full model once more with another seed
#    (the run-to-run spread), and Table 3.
for run in full no_modulation no_truncation no_aux stl_semseg stl_depth stl_normals; do
    "$PY" -m training.mtpano.train --config "training/configs/ablation_${run}.yaml"
    "$PY" -m training.eval.evaluate --config micro-cpu --weights "runs/ablation/${run}/model.safetensors" \
        --data "$EVAL_DATA" --out "runs/ablation_eval/${run}" --name "$run" --figures 0 --threads 1
done
"$PY" -m training.mtpano.train --config training/configs/ablation_full.yaml --set run.seed=1 \
    --set run.out_dir=runs/ablation/full_seed1
"$PY" -m training.eval.evaluate --config micro-cpu --weights runs/ablation/full_seed1/model.safetensors \
    --data "$EVAL_DATA" --out runs/ablation_eval/full_seed1 --name full_seed1 --figures 0 --threads 1
"$PY" -m training.eval.ablation --eval-root runs/ablation_eval --extra "Full MTPano, seed 1=full_seed1"
