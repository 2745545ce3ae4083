"""scripts/coverage.py: the heads column (prunable, or the first attention module that
cannot lose heads, or no attention) and the rendered heads counts and reasons, on a few
models built on the meta device."""

from __future__ import annotations

import importlib.util
import signal
import warnings
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "coverage.py"


@pytest.fixture(scope="module")
def coverage():
    spec = importlib.util.spec_from_file_location("coverage_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _meta(name: str, **kwargs) -> torch.nn.Module:
    import timm

    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return timm.create_model(name, pretrained=False, **kwargs)


SMALL = dict(depth=2, embed_dim=64, num_heads=4)


def test_heads_yes_no_and_reasons(coverage):
    status, layouts, reason = coverage.classify_heads(_meta("vit_small_patch16_224", **SMALL))
    assert (status, layouts, reason) == ("yes", "timm/Attention", "")

    status, detail, reason = coverage.classify_heads(_meta("cait_xxs24_224", depth=2))
    assert status == "no" and detail.startswith("blocks.0.attn (timm TalkingHeadAttn): talking")
    assert reason.startswith("timm TalkingHeadAttn (cait): talking heads")

    # the same class name from another design says where it is from
    _, _, reason = coverage.classify_heads(_meta("beit_base_patch16_224", **SMALL))
    assert reason.startswith("timm Attention (beit): its forward reshapes")

    assert coverage.classify_heads(_meta("resnet18")) == ("no", "no attention", "no attention")


def test_render_counts_heads(coverage):
    signal.signal(signal.SIGALRM, coverage._alarm)
    rows = list(coverage.timm_rows(60, ["vit_small_patch16_224", "cait_xxs24_224", "resnet18",
                                        "no_such_model"]))  # fmt: skip
    assert [row.heads for row in rows] == ["yes", "no", "no", "no"]
    assert rows[3].heads_reason == "does not build"
    text = coverage.render(rows, 1.0)
    assert "| timm | 1 | 4 | 1 |" in text  # heads prunable, models, both
    assert "- 1: no attention" in text
    assert "| timm | `TalkingHeadAttn` | `timm.models.cait` |" in text  # the attention table
    assert "| `vit_small_patch16_224` | exact | timm/Mlp | yes | timm/Attention |" in text
