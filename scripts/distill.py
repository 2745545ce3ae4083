"""Distil a pruned model from its original with `accelerate launch` (as `vbprune distill`).

    accelerate launch --multi_gpu --num_processes 8 scripts/distill.py \
        --model deit_b_vbp55 --dataset ILSVRC/imagenet-1k --output deit_b_vbp55_kd
"""

import sys

from vbprune.cli import main

if __name__ == "__main__":
    sys.exit(main(["distill", *sys.argv[1:]]))
