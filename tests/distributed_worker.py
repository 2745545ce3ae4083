"""Run by tests/test_distributed_stats.py under torchrun: calibrate on this rank's shard.

Usage: torchrun --standalone --nproc_per_node 2 tests/distributed_worker.py DTYPE OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from accelerate import Accelerator

import vbprune
from testing_utils import FAMILIES, randomize


def reference_data(dtype: torch.dtype) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)  # the same weights in every process
    model = randomize(FAMILIES["timm-convnext-convmlp"]()).to(dtype)
    data = torch.randn(11, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=dtype)
    return model, data


def main(dtype_name: str, out: str) -> None:
    accelerator = Accelerator()
    model, data = reference_data(getattr(torch, dtype_name))
    # 11 images on 2 ranks in batches of 3: ranks see 6 and 5 images, the last batches
    # uneven; nothing is padded or repeated.
    shard = data[accelerator.process_index :: accelerator.num_processes]
    calibrator = vbprune.VarianceCalibrator(model, accelerator=accelerator, covariance=True)
    stats = calibrator.run(shard.split(3))
    if accelerator.is_main_process:
        stats.save(out)
    accelerator.wait_for_everyone()  # nobody tears down gloo while others still use it
    accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
