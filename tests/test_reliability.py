"""The bad inputs, faults and offline paths of issue 24: each is one line (exit 2) that
names the thing, leaves nothing half-written behind, and what should work, works."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import vbprune
from test_errors import failed_in_one_line
from testing_utils import TINY_TIMM_ARGS, run_vbprune, write_image_folder

ROOT = Path(__file__).resolve().parents[1]


def test_a_truncated_image_read_by_loader_workers_is_one_line(tmp_path, timm_model_dir, capsys):
    """The worker's DatasetError reaches the main process as the same class, and the
    command prints its own line, not torch's "Caught ... in DataLoader worker" report."""
    folder = write_image_folder(tmp_path / "images")
    broken = folder / "train" / "dog" / "0.png"
    data = broken.read_bytes()
    broken.unlink()
    (broken.with_suffix(".jpg")).write_bytes(data[: len(data) // 3])  # truncated
    line = failed_in_one_line(capsys, "calibrate", "--model", timm_model_dir, "--dataset",
                              folder, "--num-workers", 2,
                              "--output", tmp_path / "s.safetensors")  # fmt: skip
    assert "0.jpg" in line and "Caught" not in line and "worker" not in line
    assert not (tmp_path / "s.safetensors").exists()


def test_error_line_keeps_the_workers_message():
    from vbprune.core.errors import DatasetError, error_line

    wrapped = DatasetError(
        "Caught DatasetError in DataLoader worker process 0.\nOriginal Traceback (most "
        'recent call last):\n  File "x.py", line 1, in f\n    raise DatasetError(m)\n'
        "vbprune.core.errors.DatasetError: cannot read image /d/0.jpg: truncated"
    )
    assert error_line(wrapped) == "cannot read image /d/0.jpg: truncated"
    assert error_line(DatasetError("plain")) == "plain"


def _limited(code: str, limit: int, cwd: Path) -> subprocess.CompletedProcess:
    """``code`` in a fresh Python whose files may not grow past ``limit`` bytes (EFBIG,
    as on a full disk; SIGXFSZ ignored so the write fails instead of killing it)."""
    prelude = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
        "sys.dont_write_bytecode = True\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)  # fmt: skip


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_file_size_limit_while_writing_names_the_output_and_leaves_nothing(
    prune_output, timm_model_dir, tmp_path
):
    out = tmp_path / "pruned"
    code = (
        "from vbprune.cli import main\n"
        f"sys.exit(main(['prune', '--model', {str(timm_model_dir)!r}, '--stats', "
        f"{str(prune_output / 'stats.safetensors')!r}, '--ratio', '0.5', '--output', "
        f"{str(out)!r}]))\n"
    )
    done = _limited(code, 20_000, tmp_path)  # the model's weights are larger
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1, lines
    assert f"cannot write {out}: file too large" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no temporary


def test_statistics_that_cannot_be_written_name_the_file(tmp_path, monkeypatch):
    from safetensors import SafetensorError
    from safetensors import torch as safetensors_torch

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on "
                              "device (os error 28)")  # fmt: skip

    monkeypatch.setattr(safetensors_torch, "save_file", full)
    stats = vbprune.ActivationStats({})
    full_disk = "cannot write .*s.safetensors: no space left on the device"
    with pytest.raises(vbprune.OutputNotWritableError, match=full_disk):
        stats.save(tmp_path / "s.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_model_arguments_that_cannot_build_the_architecture_name_the_config(
    prune_output, image_folder, tmp_path, capsys
):
    model = tmp_path / "edited"
    shutil.copytree(prune_output / "model", model)
    config = json.loads((model / "config.json").read_text())
    for args in (config.get("model_args", {}), config.get("vbprune", {}).get("model_args", {})):
        if "embed_dim" in args or args:
            args["embed_dim"] = 33
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(vbprune.CheckpointError, match=r"edited/config.json: its model "
                                                      "arguments cannot build"):  # fmt: skip
        vbprune.from_pretrained(model)
    line = failed_in_one_line(capsys, "evaluate", "--model", model, "--dataset", image_folder,
                              "--output", tmp_path / "ev")  # fmt: skip
    assert "config.json: its model arguments cannot build" in line


@pytest.fixture(scope="module")
def named_model_dir(tmp_path_factory, timm_model_dir):
    """The trained tiny ViT saved with its class names (cat, dog, eel), as timm does."""
    from timm.models import save_for_hf

    model = vbprune.from_pretrained(timm_model_dir)
    path = tmp_path_factory.mktemp("named") / "tiny-vit"
    save_for_hf(model, str(path), model_config={"label_names": ["cat", "dog", "eel"]},
                model_args=TINY_TIMM_ARGS, safe_serialization=True)  # fmt: skip
    return path


def _val_only(root: Path, image_folder: Path, classes: tuple[str, ...]) -> Path:
    for name in classes:
        shutil.copytree(image_folder / "val" / name, root / "val" / name)
    return root


def test_labels_follow_the_models_class_names(named_model_dir, image_folder, tmp_path):
    from vbprune.architectures.interface import class_names

    model = vbprune.from_pretrained(named_model_dir)
    assert class_names(model) == ["cat", "dog", "eel"]
    full, partial = tmp_path / "full", _val_only(tmp_path / "partial", image_folder,
                                                 ("cat", "eel"))  # fmt: skip
    _val_only(full, image_folder, ("cat", "dog", "eel"))
    reports = {}
    for name, folder in (("full", full), ("partial", partial)):
        assert run_vbprune("evaluate", "--model", named_model_dir, "--dataset", folder,
                           "--split", "val", "--num-workers", 0,
                           "--output", tmp_path / f"ev-{name}") == 0  # fmt: skip
        reports[name] = json.loads((tmp_path / f"ev-{name}" / "report.json").read_text())
    # per image: the partial folder's eel images are still eels (class 2)
    from PIL import Image

    from vbprune.data import image_transform

    transform = image_transform(model)
    correct = total = 0
    for label, name in ((0, "cat"), (2, "eel")):
        for path in sorted((partial / "val" / name).iterdir()):
            with torch.no_grad():
                logits = model(transform(Image.open(path).convert("RGB"))[None])
            correct += int(logits.argmax()) == label
            total += 1
    # eel stays class 2 (it was renumbered 1 before: top-1 0.5 instead of 1.0)
    assert reports["partial"]["top1_accuracy"] == pytest.approx(correct / total)
    assert reports["full"]["top1_accuracy"] == 1.0 and correct == total


def test_a_folder_class_the_model_lacks_is_refused(named_model_dir, image_folder, tmp_path,
                                                   capsys):  # fmt: skip
    folder = _val_only(tmp_path / "odd", image_folder, ("cat", "eel"))
    shutil.copytree(image_folder / "val" / "dog", folder / "val" / "fox")
    line = failed_in_one_line(capsys, "evaluate", "--model", named_model_dir, "--dataset",
                              folder, "--split", "val", "--num-workers", 0,
                              "--output", tmp_path / "ev")  # fmt: skip
    assert "has classes the model does not know: ['fox']" in line


def test_without_names_a_split_lacking_classes_is_refused(timm_model_dir, image_folder,
                                                          tmp_path, capsys):  # fmt: skip
    folder = _val_only(tmp_path / "partial", image_folder, ("cat", "eel"))
    line = failed_in_one_line(capsys, "evaluate", "--model", timm_model_dir, "--dataset",
                              folder, "--split", "val", "--num-workers", 0,
                              "--output", tmp_path / "ev")  # fmt: skip
    assert "has 2 classes, the model predicts 3 and has no class names" in line


def test_a_rerun_removes_the_temporaries_a_killed_run_left(prune_output, timm_model_dir,
                                                          tmp_path):  # fmt: skip
    out = tmp_path / "pruned"
    dead = tmp_path / ".pruned.abcd1234.tmp"  # an older run's (no process id)
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"x" * 1000)
    gone = tmp_path / f".pruned.{2**22 + 12345}.efgh5678.tmp"  # a process that is gone
    gone.mkdir()
    alive = tmp_path / f".pruned.{os.getpid()}.ijkl9012.tmp"  # a live run's: kept
    alive.mkdir()
    other = tmp_path / ".other.mnop3456.tmp"  # another output's: kept
    other.mkdir()
    assert run_vbprune("prune", "--model", timm_model_dir, "--stats",
                       prune_output / "stats.safetensors", "--ratio", 0.5,
                       "--output", out) == 0  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["pruned", alive.name, other.name])


@pytest.fixture
def unreachable_hub(monkeypatch):
    """The Hub endpoint refuses connections, and offline mode is off (as on a machine
    whose network is down): vbprune must notice at once."""
    import datasets.config
    from huggingface_hub import constants

    from vbprune.io import online

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(online, "_reachable", {})
    monkeypatch.setattr(online, "_switched", [])


def test_pretrained_weights_offline_are_one_line_at_once(unreachable_hub, image_folder,
                                                        tmp_path, capsys):  # fmt: skip
    start = time.perf_counter()
    line = failed_in_one_line(capsys, "evaluate", "--model", "timm:deit_tiny_patch16_224",
                              "--dataset", image_folder, "--num-workers", 0,
                              "--output", tmp_path / "ev")  # fmt: skip
    assert time.perf_counter() - start < 20  # no minute of retries
    assert "cannot download the weights of timm:deit_tiny_patch16_224" in line
    assert "--no-pretrained" in line
    assert not (tmp_path / "ev").exists()


def test_a_missing_dataset_path_is_one_line_at_once(unreachable_hub, timm_model_dir, tmp_path,
                                                   capsys, monkeypatch):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    line = failed_in_one_line(capsys, "calibrate", "--model", timm_model_dir, "--dataset",
                              "nosuch", "--output", "s.safetensors")  # fmt: skip
    assert time.perf_counter() - start < 20
    assert "dataset 'nosuch' is not a local folder (write ./nosuch" in line


def test_from_pretrained_takes_a_prune_output(prune_output):
    from_output = vbprune.from_pretrained(prune_output)
    from_model = vbprune.from_pretrained(prune_output / "model")
    assert vbprune.architectures.mlp_widths(from_output) == vbprune.architectures.mlp_widths(
        from_model
    )
    for (name, a), (_, b) in zip(from_output.state_dict().items(),
                                 from_model.state_dict().items()):  # fmt: skip
        assert torch.equal(a, b), name


def test_a_timm_folder_with_pytorch_model_bin_loads_weights_only(timm_model_dir, tmp_path):
    from timm.models import save_for_hf

    model = vbprune.from_pretrained(timm_model_dir)
    folder = tmp_path / "bin"
    save_for_hf(model, str(folder), model_args=TINY_TIMM_ARGS, safe_serialization=False)
    assert (folder / "pytorch_model.bin").is_file()
    assert not (folder / "model.safetensors").exists()
    loaded = vbprune.from_pretrained(folder)
    for (name, a), (_, b) in zip(loaded.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b), name


class _Payload:
    def __reduce__(self):  # unpickling would run this: weights-only loading must refuse
        return (os.system, ("echo pwned > /dev/null",))


def test_a_pickle_that_would_run_code_is_refused(timm_model_dir, tmp_path):
    folder = tmp_path / "evil"
    shutil.copytree(timm_model_dir, folder)
    (folder / "model.safetensors").unlink()
    torch.save({"weight": torch.zeros(1), "payload": _Payload()}, folder / "pytorch_model.bin")
    with pytest.raises(vbprune.CheckpointError, match=r"pytorch_model.bin was refused: it is a "
                                                      "pickle"):  # fmt: skip
        vbprune.from_pretrained(folder)
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(vbprune.MissingInputError, match="holds no model weights"):
        vbprune.from_pretrained(folder)


def test_unsupported_models_are_refused_in_under_300_characters():
    import timm

    model = timm.create_model("resnet18", pretrained=False)
    with pytest.raises(vbprune.UnsupportedModelError) as caught:
        vbprune.find_mlp_sites(model)
    assert len(str(caught.value)) < 300 and "docs/supported_models.md" in str(caught.value)
    with pytest.raises(vbprune.UnsupportedModelError) as caught:
        vbprune.find_attention_sites(model)
    assert len(str(caught.value)) < 300 and "docs/supported_models.md" in str(caught.value)


def test_the_card_of_a_local_model_names_it_as_given_and_loads_it_from_disk(
    prune_output, timm_model_dir
):
    card = " ".join((prune_output / "model" / "README.md").read_text().split())
    assert f"**{timm_model_dir.resolve()}**" in card  # the base model, not "hf-hub:..."
    assert "hf-hub:" not in card
    folder = prune_output / "model"
    assert f'timm.create_model("local-dir:{folder}", pretrained=True)' in card
    assert f'vbprune.from_pretrained("{folder}")' in card
    model = vbprune.from_pretrained(folder)  # what the card says works
    assert vbprune.architectures.mlp_widths(model)


def test_label_mapping_by_name_and_by_spelling():
    """The numbering is kept where names agree, or are two spellings of one class at one
    index (ImageNet's "crane2" is its models' second "crane"); moved where a split lacks
    classes; refused for a class the model does not know."""
    import types

    from vbprune.commands.runtime import label_mapping
    from vbprune.core.errors import DatasetError

    class Named(torch.nn.Module):
        def __init__(self, names):
            super().__init__()
            self.num_classes, self.pretrained_cfg = len(names), {"label_names": names}

    def dataset(names):
        return types.SimpleNamespace(features={"label": types.SimpleNamespace(names=names)})

    model = Named(["cat", "dog", "eel"])
    assert label_mapping(dataset(["cat", "dog", "eel"]), "label", model, "d") is None
    assert label_mapping(dataset(["cat", "eel"]), "label", model, "d") == {0: 0, 1: 2}
    with pytest.raises(DatasetError, match=r"classes the model does not know: \['fox'\]"):
        label_mapping(dataset(["cat", "dog", "fox"]), "label", model, "d")
    imagenet = [f"class {i}" for i in range(1000)]
    imagenet[134] = imagenet[517] = "crane"
    hub = list(imagenet)
    hub[517] = "crane2"
    assert label_mapping(dataset(hub), "label", Named(imagenet), "d") is None
    # a model without names (transformers' LABEL_n placeholders) keeps the numbering
    assert label_mapping(dataset(["a", "b"]), "label", torch.nn.Linear(1, 1), "d") is None


def test_a_transformers_folder_without_weights_is_one_error(tmp_path):
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64, image_size=32, patch_size=8)  # fmt: skip
    model = ViTForImageClassification(config)
    saved = vbprune.save_pretrained(model, tmp_path / "vit")
    (saved / "model.safetensors").unlink()
    with pytest.raises(vbprune.MissingInputError, match="holds no model weights"):
        vbprune.from_pretrained(saved)


def test_a_full_disk_elsewhere_is_named_as_that_file(tmp_path):
    """A cache write failing inside an output's `with` is not reported as the output's."""
    import errno

    from vbprune.core.errors import out_of_space
    from vbprune.io.folders import atomic_directory

    cache = tmp_path / "cache" / "weights.bin"
    with (
        pytest.raises(vbprune.OutputNotWritableError) as caught,
        atomic_directory(tmp_path / "out"),
    ):
        raise OSError(errno.ENOSPC, "No space left on device", str(cache))
    assert str(caught.value) == f"cannot write {cache}: no space left on the device"
    full = r"cannot write .*out: no space"
    with (
        pytest.raises(vbprune.OutputNotWritableError, match=full),
        atomic_directory(tmp_path / "out") as tmp,
    ):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "model.bin"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    # torch.save on a full disk says no errno; other errors are not taken for a full disk
    assert out_of_space(RuntimeError("[enforce fail at inline_container.cc:664] . "
                                     "PytorchStreamWriter failed writing file data/0: file "
                                     "write failed"))  # fmt: skip
    assert out_of_space(RuntimeError("CUDA out of memory")) is None
    assert out_of_space(OSError(errno.EACCES, "Permission denied")) is None


def test_offline_mode_vbprune_switched_on_is_undone_before_an_upload(unreachable_hub):
    from huggingface_hub import constants

    from vbprune.io import online

    assert online.hub_offline() and constants.HF_HUB_OFFLINE
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    online.back_online()
    assert not constants.HF_HUB_OFFLINE and os.environ["HF_HUB_OFFLINE"] == "0"


def test_a_plain_timm_folder_edited_or_pickled_is_one_line(timm_model_dir, image_folder,
                                                            tmp_path, capsys):  # fmt: skip
    """The same two faults in a timm folder vbprune did not write (timm builds it)."""
    edited = tmp_path / "edited"
    shutil.copytree(timm_model_dir, edited)
    config = json.loads((edited / "config.json").read_text())
    config["model_args"]["embed_dim"] = 33
    (edited / "config.json").write_text(json.dumps(config))
    common = ("--dataset", image_folder, "--num-workers", 0, "--output", tmp_path / "ev")
    line = failed_in_one_line(capsys, "evaluate", "--model", edited, *common)
    assert f"{edited / 'config.json'}: its model arguments cannot build the model" in line
    evil = tmp_path / "evil"
    shutil.copytree(timm_model_dir, evil)
    (evil / "model.safetensors").unlink()
    torch.save({"weight": torch.zeros(1), "payload": _Payload()}, evil / "pytorch_model.bin")
    line = failed_in_one_line(capsys, "evaluate", "--model", evil, *common)
    assert f"the weights in {evil} were refused" in line and "posix.system" in line
    assert not (tmp_path / "ev").exists()
