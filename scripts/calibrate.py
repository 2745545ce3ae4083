"""Calibrate with `accelerate launch` (same options as `vbprune calibrate`).

    accelerate launch --multi_gpu --num_processes 8 scripts/calibrate.py \
        --model timm:deit_base_patch16_224 --dataset ILSVRC/imagenet-1k \
        --output deit_b_stats.safetensors
"""

import sys

from vbprune.cli import main

if __name__ == "__main__":
    sys.exit(main(["calibrate", *sys.argv[1:]]))
