"""Fixtures (and the test environment); the factories they use are in testing_utils.py."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

from testing_utils import (
    FAMILIES,
    IMAGE,
    TINY_TIMM_ARGS,
    run_vbprune,
    write_image_folder,
)

os.environ.setdefault("TQDM_DISABLE", "1")
# latency tables are cached here, not in the user's ~/.cache
os.environ.setdefault("VBPRUNE_CACHE", tempfile.mkdtemp(prefix="vbprune-cache-"))


@pytest.fixture(params=sorted(FAMILIES))
def family(request):
    return request.param


@pytest.fixture
def images():
    return torch.randn(4, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def calibration_refused(monkeypatch):
    """Calibration fails the test: options must be refused before it."""
    from vbprune.commands import runtime

    def no_calibration(*args, **kwargs):
        raise AssertionError("calibrated before the options were checked")

    monkeypatch.setattr(runtime, "calibrate", no_calibration)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """21 training and 9 validation images in 3 classes (21 divides by neither 2 nor 4)."""
    return write_image_folder(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def timm_model_dir(tmp_path_factory, image_folder):
    """A tiny timm ViT trained briefly on ``image_folder`` (so top-1 means something),
    saved in timm's own format (what `local-dir:` and the Hub hold)."""
    import timm
    from PIL import Image
    from timm.models import save_for_hf

    from vbprune.data import image_transform

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **TINY_TIMM_ARGS)
    transform = image_transform(model)
    images, labels = [], []
    for label, class_dir in enumerate(sorted((image_folder / "train").iterdir())):
        for path in sorted(class_dir.iterdir()):
            images.append(transform(Image.open(path).convert("RGB")))
            labels.append(label)
    images, labels = torch.stack(images), torch.tensor(labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    path = tmp_path_factory.mktemp("models") / "tiny-vit"
    save_for_hf(model, str(path), model_args=TINY_TIMM_ARGS, safe_serialization=True)
    return path


@pytest.fixture
def local_hub(monkeypatch, tmp_path):
    """Point huggingface_hub at a fresh LocalHub and a temporary HF_HOME; yield the endpoint.

    huggingface_hub reads its settings into module constants at import time (and other tests may
    have imported it already), so the constants are patched as well as the environment."""
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _cache_manager

    home = tmp_path / "hf_home"
    cache = home / "hub"
    from hub_server import LocalHub

    with LocalHub() as hub:
        endpoint = hub.endpoint
        settings = {
            "HF_ENDPOINT": endpoint,
            "HF_HOME": str(home),
            "HF_HUB_CACHE": str(cache),
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_OFFLINE": "0",
            "HF_TOKEN": "hf_local_test_token",  # never send a real token; whoami needs one
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        patches = {
            "ENDPOINT": endpoint,
            "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
            "HF_HOME": str(home),
            "HF_HUB_CACHE": str(cache),
            "HF_ASSETS_CACHE": str(home / "assets"),
            "HF_TOKEN_PATH": str(home / "token"),
            "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
            "HF_XET_CACHE": str(home / "xet"),
            "HF_HUB_DISABLE_XET": True,
            "HF_HUB_OFFLINE": False,
        }
        for name, value in patches.items():
            monkeypatch.setattr(constants, name, value)
        # Copies taken at import time: the module-level HfApi behind huggingface_hub.create_repo,
        # upload_folder, ... and the default cache of scan_cache_dir.
        monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
        monkeypatch.setattr(_cache_manager, "HF_HUB_CACHE", str(cache))
        # transformers keeps one HfApi, made on first use with the endpoint of that moment
        from transformers.utils import hub as transformers_hub

        monkeypatch.setattr(transformers_hub, "_hf_api", None)
        yield endpoint


@pytest.fixture(scope="session")
def prune_output(tmp_path_factory, image_folder, timm_model_dir):
    """`vbprune prune` of the trained tiny ViT at ratio 0.5 with top-1 on val, run once."""
    out = tmp_path_factory.mktemp("prune") / "pruned"
    code = run_vbprune("prune", "--model", timm_model_dir, "--dataset", image_folder,
                       "--ratio", 0.5, "--eval-split", "val", "--num-workers", 0,
                       "--output", out)  # fmt: skip
    assert code == 0
    return out
