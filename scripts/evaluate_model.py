"""Evaluate with `accelerate launch` (same options as `vbprune evaluate`).

    accelerate launch --multi_gpu --num_processes 8 scripts/evaluate_model.py \
        --model deit_b_vbp55_kd/model --dataset ILSVRC/imagenet-1k --output deit_b_eval
"""

import sys

from vbprune.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
