"""VarianceCalibrator records post-activation statistics and always cleans up."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import vbprune
from testing_utils import FAMILIES, randomize


def capture(module):
    """Concatenate what a forward hook on ``module`` sees, as (samples, H) float64."""
    seen = []
    handle = module.register_forward_hook(lambda m, a, out: seen.append(out.detach()))
    return seen, handle


def as_samples(tensors, channel_dim):
    rows = [t.movedim(channel_dim, -1).reshape(-1, t.shape[channel_dim]) for t in tensors]
    return torch.cat(rows).double()


def test_statistics_are_post_activation_per_token():
    model = randomize(FAMILIES["timm-vit"]()).double()
    site = vbprune.find_mlp_sites(model)[0]
    batches = [torch.randn(n, 3, 32, 32, dtype=torch.float64) for n in (3, 2)]
    seen, handle = capture(site.fc1)
    stats = vbprune.VarianceCalibrator(model).run(batches)
    handle.remove()
    post_act = torch.nn.functional.gelu(as_samples(seen, -1))  # (B*T, H)
    assert stats[site.name].count == 5 * 17  # every token of every image
    torch.testing.assert_close(stats[site.name].mean, post_act.mean(0), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(stats[site.name].var, post_act.var(0), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["timm-convnextv2-convmlp", "hf-convnextv2"])
def test_convnext_v2_statistics_are_after_grn(name):
    model = randomize(FAMILIES[name]()).double()
    site = vbprune.find_mlp_sites(model)[1]
    with torch.no_grad():  # a non-zero GRN weight, so that GRN changes the values
        site.grn.weight.copy_(torch.randn_like(site.grn.weight))
    batches = [torch.randn(2, 3, 32, 32, dtype=torch.float64)]
    seen, handle = capture(site.grn)
    stats = vbprune.VarianceCalibrator(model).run(batches)
    handle.remove()
    samples = as_samples(seen, 1 if site.is_conv else -1)
    torch.testing.assert_close(stats[site.name].mean, samples.mean(0), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(stats[site.name].var, samples.var(0), rtol=1e-10, atol=1e-12)


def test_batch_forms_and_max_batches(images):
    model = randomize(FAMILIES["hf-vit"]())
    name = vbprune.find_mlp_sites(model)[0].name
    calibrator = vbprune.VarianceCalibrator(model)
    as_tensors = calibrator.run([images, images])
    as_dicts = calibrator.run([{"pixel_values": images, "labels": torch.zeros(4)}] * 2)
    as_tuples = calibrator.run([(images, torch.zeros(4))] * 2)
    for other in (as_dicts, as_tuples):
        assert other[name].count == as_tensors[name].count == 2 * 4 * 17
        torch.testing.assert_close(other[name].m2, as_tensors[name].m2)
    limited = calibrator.run(iter([images] * 5), max_batches=2)
    assert limited[name].count == 2 * 4 * 17


def test_hooks_removed_and_modes_restored_on_error(images):
    model = randomize(FAMILIES["timm-swin"]())
    model.train()
    model.head.eval()  # a mixed state must come back as it was

    def failing():
        yield images
        raise RuntimeError("data loader broke")

    with pytest.raises(RuntimeError, match="data loader broke"):
        vbprune.VarianceCalibrator(model).run(failing())
    assert model.training and not model.head.training
    assert all(site.fc2._forward_pre_hooks == {} for site in vbprune.find_mlp_sites(model))


def test_hooks_removed_when_the_batches_cannot_be_iterated():
    model = randomize(FAMILIES["hf-vit"]())

    class Broken:
        def __len__(self):
            return 3

        def __iter__(self):
            raise OSError("dataset unreachable")

    with pytest.raises(OSError, match="unreachable"):
        vbprune.VarianceCalibrator(model).run(Broken())
    assert all(site.fc2._forward_pre_hooks == {} for site in vbprune.find_mlp_sites(model))


def test_nan_activation_names_the_site(images):
    model = randomize(FAMILIES["timm-vit"]())
    site = vbprune.find_mlp_sites(model)[1]
    with torch.no_grad():
        site.fc1.bias[3] = float("nan")
    with pytest.raises(FloatingPointError, match=r"blocks\.1\.mlp"):
        vbprune.VarianceCalibrator(model).run([images])
    assert site.fc2._forward_pre_hooks == {}


def test_bad_batches_raise_clear_errors(images):
    calibrator = vbprune.VarianceCalibrator(randomize(FAMILIES["timm-vit"]()))
    with pytest.raises(ValueError, match="empty"):
        calibrator.run([])
    with pytest.raises(TypeError, match="pixel_values"):
        calibrator.run([{"image": images}])
    with pytest.raises(ValueError, match="max_batches"):
        calibrator.run([images], max_batches=0)


def test_accelerator_process_count_must_match_world_size(monkeypatch):
    # What torchrun without ACCELERATE_USE_CPU=1 produces: a 1-process accelerator per rank.
    single = SimpleNamespace(num_processes=1, unwrap_model=lambda model: model)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match="WORLD_SIZE=2"):
        vbprune.VarianceCalibrator(FAMILIES["timm-vit"](), accelerator=single)


def test_bfloat16_model_statistics_are_accumulated_in_float64(images):
    model = randomize(FAMILIES["timm-vit"]())
    reference = vbprune.VarianceCalibrator(model).run([images])
    stats = vbprune.VarianceCalibrator(model.to(torch.bfloat16)).run([images])
    for name, s in stats.items():
        assert s.mean.dtype == s.m2.dtype == torch.float64
        assert s.count == reference[name].count
        # bf16 has 8 bits of mantissa: the statistics agree to its precision
        torch.testing.assert_close(s.var, reference[name].var, rtol=0.1, atol=1e-3)
