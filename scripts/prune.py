"""Prune with `accelerate launch` (same options as `vbprune prune`).

    accelerate launch --multi_gpu --num_processes 8 scripts/prune.py \
        --model timm:deit_base_patch16_224 --dataset ILSVRC/imagenet-1k \
        --num-samples 50000 --ratio 0.55 --eval-split validation --output deit_b_vbp55
"""

import sys

from vbprune.cli import main

if __name__ == "__main__":
    sys.exit(main(["prune", *sys.argv[1:]]))
