"""Bad input is a VBPruneError, printed by the CLI as one line; a bug keeps its traceback."""

from __future__ import annotations

import pytest

import vbprune
from testing_utils import run_vbprune

ERRORS = [
    vbprune.ConfigError, vbprune.OptionTypeError, vbprune.UnsupportedModelError,
    vbprune.StatisticsError, vbprune.NonFiniteActivationError, vbprune.PlanError,
    vbprune.CheckpointError, vbprune.DatasetError, vbprune.MissingInputError,
    vbprune.OutputExistsError, vbprune.OutputNotWritableError, vbprune.ProcessCountError,
    vbprune.HubError,
]  # fmt: skip


def test_every_error_is_a_vbprune_error_and_keeps_its_builtin_parent():
    builtin = {
        vbprune.OptionTypeError: TypeError,
        vbprune.NonFiniteActivationError: FloatingPointError,
        vbprune.MissingInputError: FileNotFoundError,
        vbprune.OutputExistsError: FileExistsError,
        vbprune.OutputNotWritableError: PermissionError,
        vbprune.ProcessCountError: RuntimeError,
        vbprune.HubError: OSError,
    }
    for error in ERRORS:
        assert issubclass(error, vbprune.VBPruneError)
        assert issubclass(error, builtin.get(error, ValueError)), error


def test_cli_prints_user_errors_as_one_line(tmp_path, capsys):
    code = run_vbprune("prune", "--model", "timm:no_such_model", "--stats", tmp_path / "s",
                       "--ratio", 0.5, "--output", tmp_path / "out")  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("vbprune prune: error: timm has no model 'no_such_model'")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_cli_lets_a_bug_raise_with_its_traceback(monkeypatch, tmp_path):
    from vbprune.commands import push

    def broken(args):
        raise ValueError("a bug, not bad input")  # a plain ValueError: not caught

    monkeypatch.setattr(push, "run", broken)
    with pytest.raises(ValueError, match="a bug"):
        run_vbprune("push", tmp_path, "--repo-id", "me/x")


def test_hub_dataset_errors_become_vbprune_errors(monkeypatch):
    import datasets

    from vbprune.data import load_image_dataset

    def unknown_split(path, split, streaming):
        raise ValueError(f"Unknown split \"{split}\". Should be one of ['train'].")

    monkeypatch.setattr(datasets, "load_dataset", unknown_split)
    with pytest.raises(vbprune.DatasetError, match=r"cannot load split 'valid' of 'me/data'"):
        load_image_dataset("me/data", "valid")

    def missing(path, split, streaming):
        raise FileNotFoundError(f"no dataset {path}")

    monkeypatch.setattr(datasets, "load_dataset", missing)
    from vbprune.io import online

    monkeypatch.setattr(online, "hub_offline", lambda: False)  # the Hub answers
    with pytest.raises(vbprune.MissingInputError, match="could not be loaded from the Hub"):
        load_image_dataset("me/data", "train")
    monkeypatch.setattr(online, "hub_offline", lambda: True)  # it does not: said so
    with pytest.raises(vbprune.MissingInputError, match="the Hub cannot be reached"):
        load_image_dataset("me/data", "train")


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"vbprune {command}: error: ") and err.count("\n") == 1, err
    return err


def test_bad_model_folders_are_one_line_errors(tmp_path, capsys):
    broken, unknown = tmp_path / "broken", tmp_path / "unknown"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    unknown.mkdir()
    (unknown / "config.json").write_text('{"model_type": "no_such_type"}')
    args = ["--stats", tmp_path / "s", "--ratio", 0.5, "--output", tmp_path / "out"]
    assert run_vbprune("prune", "--model", broken, *args) == 2
    assert "config.json is not valid JSON" in one_line_error(capsys, "prune")
    assert run_vbprune("prune", "--model", unknown, *args) == 2
    assert "transformers cannot build" in one_line_error(capsys, "prune")
    assert run_vbprune("push", broken, "--repo-id", "me/x") == 2
    assert f"{broken}/config.json is not valid JSON" in one_line_error(capsys, "push")
    assert not (tmp_path / "out").exists()


def test_an_output_below_a_file_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "out"
    assert run_vbprune("prune", "--model", "timm:no_such_model", "--stats", "s",
                       "--ratio", 0.5, "--output", out) == 2  # fmt: skip
    assert f"cannot write {out}: {tmp_path / 'file'} is a file" in one_line_error(capsys, "prune")


def test_numbers_out_of_range_are_refused_while_parsing(capsys):
    with pytest.raises(SystemExit) as info:
        run_vbprune("evaluate", "--model", "x", "--dataset", "d", "--batch-size", 0)
    assert info.value.code == 2
    assert "argument --batch-size: must be a positive integer, got 0" in capsys.readouterr().err


def test_hub_ids_that_do_not_exist_or_are_invalid(local_hub, prune_output, capsys):
    with pytest.raises(vbprune.MissingInputError, match="neither a local folder nor a model"):
        vbprune.from_pretrained("tester/nope")
    assert run_vbprune("push", prune_output, "--repo-id", "bad id!!") == 2
    assert "cannot push to 'bad id!!'" in one_line_error(capsys, "push")


def failed_in_one_line(capsys, *argv) -> str:
    """Run ``vbprune ARGV``, check it failed with exit code 2 and a single line on
    stderr (no traceback), and return that line."""
    assert run_vbprune(*argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "negative M2", "NaN"])
def test_bad_statistics_files_are_named_in_one_line(prune_output, tmp_path, capsys, damage):
    from safetensors.torch import load_file, save_file

    good = prune_output / "stats.safetensors"
    bad = tmp_path / "bad.safetensors"
    if damage == "truncated":
        bad.write_bytes(good.read_bytes()[:300])
    elif damage == "garbage":
        bad.write_bytes(b"not a safetensors file")
    else:
        from safetensors import safe_open

        with safe_open(str(good), "pt") as f:
            metadata = f.metadata()
        tensors = load_file(good)
        tensors["blocks.1.mlp.m2"][3] = -1.0 if damage == "negative M2" else float("nan")
        save_file(tensors, bad, metadata=metadata)
    model = prune_output / "model"
    line = failed_in_one_line(capsys, "prune", "--model", model, "--stats", bad, "--ratio", 0.5,
                          "--output", tmp_path / "out")  # fmt: skip
    assert str(bad) in line
    if damage in ("negative M2", "NaN"):
        assert "blocks.1.mlp" in line
    assert not (tmp_path / "out").exists()


def test_outputs_that_would_replace_an_input_or_the_current_folder(
    prune_output, tmp_path, capsys, monkeypatch
):
    stats = prune_output / "stats.safetensors"
    before = stats.read_bytes()
    for output in (prune_output, prune_output / "again", prune_output.parent):
        line = failed_in_one_line(capsys, "prune", "--model", prune_output, "--stats", stats,
                              "--ratio", 0.3, "--output", output, "--overwrite")  # fmt: skip
        assert "overlap" in line and "--output" in line
    monkeypatch.chdir(tmp_path)
    line = failed_in_one_line(capsys, "prune", "--model", prune_output, "--stats", stats,
                          "--ratio", 0.3, "--output", ".", "--overwrite")  # fmt: skip
    assert "is the current folder" in line
    assert stats.read_bytes() == before and (prune_output / "model" / "config.json").is_file()


def test_a_prune_output_is_a_model_and_calibrate_keeps_existing_statistics(
    prune_output, image_folder, tmp_path, capsys
):
    # the folder `vbprune prune` wrote is accepted as --model (its model/ inside)
    out = tmp_path / "again"
    assert run_vbprune("prune", "--model", prune_output, "--dataset", image_folder,
                       "--num-workers", 0, "--ratio", 0.2, "--output", out) == 0  # fmt: skip
    existing = tmp_path / "stats.safetensors"
    existing.write_bytes(b"keep me")
    line = failed_in_one_line(capsys, "calibrate", "--model", prune_output, "--dataset",
                          image_folder, "--num-workers", 0, "--output", existing)  # fmt: skip
    assert "--overwrite" in line and existing.read_bytes() == b"keep me"


def test_an_unwritable_output_location_is_refused_before_any_work(prune_output, capsys):
    # /proc cannot hold files, even for root (for whom a chmod'ed folder is writable)
    line = failed_in_one_line(capsys, "prune", "--model", prune_output, "--stats",
                              prune_output / "stats.safetensors", "--ratio", 0.3,
                              "--output", "/proc/vbprune-out")  # fmt: skip
    assert "cannot write /proc/vbprune-out: /proc is not writable" in line
    line = failed_in_one_line(capsys, "calibrate", "--model", prune_output, "--dataset",
                              prune_output, "--output", "/proc/stats.safetensors")  # fmt: skip
    assert "/proc is not writable" in line


def test_push_without_a_network_is_one_line(prune_output, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = failed_in_one_line(capsys, "push", prune_output, "--repo-id", "me/model")
    assert "offline mode is on" in line
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    line = failed_in_one_line(capsys, "push", prune_output, "--repo-id", "me/model")
    assert "cannot reach the Hub" in line


def test_models_that_cannot_be_had_are_one_line_errors(image_folder, tmp_path, capsys):
    common = ("--dataset", image_folder, "--num-workers", 0, "--output", tmp_path / "s")
    # a real timm model without MLPs: said so, with the supported classes
    line = failed_in_one_line(capsys, "calibrate", "--model", "timm:resnet18",
                              "--no-pretrained", *common)  # fmt: skip
    assert "vbprune cannot prune ResNet" in line and "docs/supported_models.md" in line
    assert len(line) < 300
    # an unknown Hub id while offline (HF_HUB_OFFLINE=1 in the tests): one line
    line = failed_in_one_line(capsys, "calibrate", "--model", "hf:nobody/nothing", *common)
    assert "cannot load transformers model 'nobody/nothing'" in line
    assert not (tmp_path / "s").exists()


def test_pruning_options_are_named_as_typed(prune_output, tmp_path, capsys):
    line = failed_in_one_line(capsys, "prune", "--model", prune_output, "--stats",
                              prune_output / "stats.safetensors", "--ratio", 1.5,
                              "--output", tmp_path / "out")  # fmt: skip
    assert line.endswith("error: --ratio must be in [0, 1), got 1.5")
    line = failed_in_one_line(capsys, "prune", "--model", prune_output, "--stats",
                              prune_output / "stats.safetensors", "--ratio", 0.5,
                              "--round-to", 0, "--output", tmp_path / "out")  # fmt: skip
    assert "--round-to must be a positive integer, got 0" in line
