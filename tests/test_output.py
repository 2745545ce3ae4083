"""What a person reads: one default per option, the right help, a version, a short
result, and progress where work is long (only on a terminal)."""

from __future__ import annotations

import io

import pytest

import vbprune
from vbprune.cli import build_parser, main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"vbprune {vbprune.__version__}"


def test_every_option_names_one_default_and_the_split_its_purpose():
    parser = build_parser()
    commands = next(iter(parser._subparsers._group_actions)).choices
    for name, command in commands.items():
        formatter = command._get_formatter()
        for action in command._actions:
            text = formatter._get_help_string(action) if action.help else ""
            shown = text.replace("%(default)s", "").lower()  # the formatter's own "(default: X)"
            assert shown.count("default") <= 1, (name, action.option_strings, text)
    splits = {
        name: action.help
        for name, command in commands.items()
        for action in command._actions
        if action.dest == "split"
    }
    assert splits["evaluate"] == "split to evaluate on"
    assert splits["calibrate"] == splits["prune"] == "split to calibrate on"
    assert splits["distill"] == "split to train on"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False])
def test_long_scoring_shows_progress_on_a_terminal_only(monkeypatch, images, terminal):
    from testing_utils import FAMILIES, randomize
    from vbprune.planning import steps

    model = randomize(FAMILIES["timm-vit"]())
    stats = vbprune.VarianceCalibrator(model, covariance=True).run([images])
    monkeypatch.setattr(steps, "PROGRESS_DELAY", 0.0)  # OBS of DeiT-B takes ~20 s
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    stream = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    vbprune.prune_model(model, stats, ratio=0.5, criterion="obs", compensate="ls")
    shown = stream.getvalue()
    assert ("scoring (obs)" in shown and "compensating (ls)" in shown) == terminal, shown


def test_result_repr_is_one_short_line(images):
    from testing_utils import FAMILIES, randomize

    model = randomize(FAMILIES["hf-swin"]())
    result = vbprune.prune_model(model, vbprune.VarianceCalibrator(model).run([images]), 0.3)
    text = repr(result)
    assert "\n" not in text and len(text) < 200
    assert text.startswith(f"PruningResult({result.num_pruned} of ")
    assert "criterion variance, compensate mean" in text
