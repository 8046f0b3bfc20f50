"""Synthetic panoramas with DiT360 (appendix A.1): FLUX.1-dev + the DiT360 panorama LoRA through diffusers.

    torchrun --nproc_per_node 8 -m training.mtpano.generate_dit360 --out data/dit360 --count 76224

GPU only; ``diffusers`` (and its FLUX dependencies) are an optional install, imported only here. Settings of the
paper: 2048 x 1024, 35 denoising steps, guidance 3.0, float16, batch 4 per GPU, a unique seed per image. The
weights are the user's to obtain (FLUX.1-dev has a gated non-commercial licence; check the DiT360 LoRA's terms).

Work is sharded over ranks (image ``i`` belongs to rank ``i mod world_size``); each image is written to a temporary
file and renamed, and its prompt appended to ``prompts_rank<r>.jsonl`` afterwards, so a crashed or killed run
restarted with the same arguments skips every finished image and redoes nothing else. Image ``i`` uses prompt
``prompts.sample_prompt(seed, i)`` and generator seed ``seed · 10^7 + i`` on any rank.
"""
from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

from .prompts import sample_prompt

DEFAULT_BASE = "black-forest-labs/FLUX.1-dev"
DEFAULT_LORA = "Insta360-Research/DiT360-Panorama-Image-Generation"


def image_path(out: Path, index: int) -> Path:
    return out / "images" / f"{index:06d}.png"


def assigned_indices(count: int, rank: int, world_size: int) -> list[int]:
    """The image indices of one rank."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    return list(range(rank, count, world_size))


def pending_indices(out: Path, indices: Sequence[int]) -> list[int]:
    """``indices`` whose image is not written yet (a finished image is never redone)."""
    return [i for i in indices if not image_path(out, i).is_file()]


def image_seed(seed: int, index: int) -> int:
    return seed * 10_000_000 + index


def load_pipeline(base: str, lora: str, device: str):
    """The FLUX pipeline with the DiT360 LoRA, float16 on ``device`` (raises a clear error without diffusers)."""
    try:
        import torch
        from diffusers import FluxPipeline
    except ImportError as error:
        raise SystemExit("DiT360 generation needs the optional packages diffusers, transformers, accelerate, "
                         f"sentencepiece and peft on a CUDA machine ({error})") from error
    pipeline = FluxPipeline.from_pretrained(base, torch_dtype=torch.float16)
    pipeline.load_lora_weights(lora)
    return pipeline.to(device)


def generate(out: Path, count: int, *, seed: int, rank: int, world_size: int, batch_size: int = 4,
             steps: int = 35, guidance: float = 3.0, width: int = 2048, height: int = 1024,
             base: str = DEFAULT_BASE, lora: str = DEFAULT_LORA, device: str = "cuda") -> int:
    """Generate this rank's missing images; returns how many were written."""
    import torch

    todo = pending_indices(out, assigned_indices(count, rank, world_size))
    if not todo:
        return 0
    (out / "images").mkdir(parents=True, exist_ok=True)
    pipeline = load_pipeline(base, lora, device)
    log = out / f"prompts_rank{rank}.jsonl"
    written = 0
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        prompts = [sample_prompt(seed, i) for i in batch]
        generators = [torch.Generator(device).manual_seed(image_seed(seed, i)) for i in batch]
        images = pipeline(prompt=[p.text for p in prompts], width=width, height=height, num_inference_steps=steps,
                          guidance_scale=guidance, generator=generators).images
        for index, prompt, image in zip(batch, prompts, images):
            path = image_path(out, index)
            tmp = path.with_name(path.stem + ".tmp.png")
            image.save(tmp)
            os.replace(tmp, path)
            with log.open("a") as f:
                f.write(json.dumps({"index": index, "seed": image_seed(seed, index), **prompt.__dict__}) + "\n")
            written += 1
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Generate DiT360 panoramas (sharded over ranks, resumable).")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--count", required=True, type=int, help="total number of images of the run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rank", type=int, default=int(os.environ.get("RANK", "0")))
    parser.add_argument("--world-size", type=int, default=int(os.environ.get("WORLD_SIZE", "1")))
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=35)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--base", default=DEFAULT_BASE)
    parser.add_argument("--lora", default=DEFAULT_LORA)
    args = parser.parse_args(argv)
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    written = generate(args.out, args.count, seed=args.seed, rank=args.rank, world_size=args.world_size,
                       batch_size=args.batch_size, steps=args.steps, guidance=args.guidance, width=args.width,
                       height=args.height, base=args.base, lora=args.lora, device=device)
    print(f"rank {args.rank}: {written} images written to {args.out}")


if __name__ == "__main__":
    main()
