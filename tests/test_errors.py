"""Bad input is a VBPruneError, printed by the CLI as one line; a bug keeps its traceback."""

from __future__ import annotations

import pytest

import vbprune
from testing_utils import run_vbprune

ERRORS = [
    vbprune.ConfigError, vbprune.OptionTypeError, vbprune.UnsupportedModelError,
    vbprune.StatisticsError, vbprune.NonFiniteActivationError, vbprune.PlanError,
    vbprune.CheckpointError, vbprune.DatasetError, vbprune.MissingInputError,
    vbprune.OutputExistsError, vbprune.ProcessCountError,
]  # fmt: skip


def test_every_error_is_a_vbprune_error_and_keeps_its_builtin_parent():
    builtin = {
        vbprune.OptionTypeError: TypeError,
        vbprune.NonFiniteActivationError: FloatingPointError,
        vbprune.MissingInputError: FileNotFoundError,
        vbprune.OutputExistsError: FileExistsError,
        vbprune.ProcessCountError: RuntimeError,
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
