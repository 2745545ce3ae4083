"""The docs stay true: the API reference matches the code, every documented command
parses, and the quickstart's Python runs (on tiny stand-ins for the Hub model and data)."""

from __future__ import annotations

import re
import runpy
import shlex
from pathlib import Path

import pytest
import torch

import vbprune
from vbprune.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCRIPTS = {"prune.py": "prune", "distill.py": "distill", "calibrate.py": "calibrate",
           "evaluate_model.py": "evaluate"}  # fmt: skip


def test_api_reference_is_current():
    make = runpy.run_path(str(ROOT / "scripts" / "make_api_docs.py"))
    current = (ROOT / "docs" / "api.md").read_text()
    assert make["render"]() == current, "docs/api.md is stale: python scripts/make_api_docs.py"
    for name in vbprune.__all__:  # every public name of the package is documented
        if name not in ("__version__", "SUPPORTED_FAMILIES"):
            assert f"`vbprune.{name}`" in current, name


def test_docstring_sections_become_markdown_lists():
    make = runpy.run_path(str(ROOT / "scripts" / "make_api_docs.py"))
    doc = "Do it.\n\nArgs:\n    x: The ``input``\n        on two lines.\n    y: See :class:`~a.B`."
    assert make["docstring_markdown"](doc) == (
        "Do it.\n\n**Args**\n\n- `x`: The `input` on two lines.\n- `y`: See `B`."
    )


def documented_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every vbprune command in the README and docs' bash blocks."""
    found = []
    for path in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                tokens = shlex.split(line, comments=True)
                # one shell line may hold several commands
                command: list[str] = []
                for token in [*tokens, "&&"]:
                    if token in ("&&", ";", "|", "||"):
                        argv = _vbprune_argv(command)
                        if argv is not None:
                            found.append((f"{path.name}: {' '.join(command)}", argv))
                        command = []
                    else:
                        command.append(token)
    return found


def _vbprune_argv(command: list[str]) -> list[str] | None:
    for i, token in enumerate(command):
        if token == "vbprune" and i == 0:
            return command[1:]
        if token.startswith("scripts/") and Path(token).name in SCRIPTS:
            return [SCRIPTS[Path(token).name], *command[i + 1 :]]
    return None


def test_every_documented_command_parses():
    commands = documented_commands()
    subcommands = {argv[0] for _, argv in commands}
    # the recipes cover the whole pipeline
    assert {"calibrate", "prune", "distill", "evaluate", "push", "demo", "sweep"} <= subcommands
    parser = build_parser()
    for action in parser._subparsers._group_actions:  # no --rat for --ratio in the docs
        for subparser in action.choices.values():
            subparser.allow_abbrev = False
    from vbprune.cli import COMMANDS
    from vbprune.commands.distill import _given_training_fields

    for where, argv in commands:
        try:
            _, extra = parser.parse_known_args(argv)
        except SystemExit:
            pytest.fail(f"documented command does not parse: {where}")
        if extra:  # only distill passes options on: the Trainer's, which must parse too
            assert getattr(COMMANDS[argv[0]], "EXTRA_ARGUMENTS", False), (where, extra)
            _given_training_fields(extra)


def test_documented_timm_models_exist():
    import timm

    known = set(timm.list_pretrained()) | set(timm.list_models())
    names = {
        match.group(1)
        for path in DOCS
        for match in re.finditer(r"timm:([\w.]+)", path.read_text())
        if match.group(1) != "NAME"
    }
    assert len(names) >= 9  # DeiT-T/S/B, Swin-T/S/B, ConvNeXt-T/S/B at least
    assert not names - known, f"unknown timm models in the docs: {sorted(names - known)}"


def docs_block(document: str, name: str) -> str:
    """The Python block of ``docs/DOCUMENT`` (or of the README) marked
    ``<!-- docs-test: NAME -->``."""
    path = ROOT / document if document == "README.md" else ROOT / "docs" / document
    text = path.read_text()
    match = re.search(rf"<!-- docs-test: {name} -->\n```python\n(.*?)```", text, flags=re.S)
    assert match, f"{document} block {name} not found"
    return match.group(1)


def run_block(code: str, replacements: dict[str, str]) -> dict:
    for old, new in replacements.items():
        assert old in code, f"quickstart no longer contains {old!r}"
        code = code.replace(old, new)
    namespace: dict = {}
    exec(compile(code, "quickstart.md", "exec"), namespace)
    return namespace


def test_readme_quickstart_runs_verbatim_on_a_timm_model_built_at_32_px(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    ns = run_block(docs_block("README.md", "readme-quickstart"), {})  # nothing replaced
    model, result, pruned = ns["model"], ns["result"], ns["pruned"]
    assert vbprune.architectures.interface.input_size(model) == (3, 32, 32)
    assert result.num_pruned == 12 * 768 // 2  # DeiT-T: 12 MLPs of 768 neurons
    (macs_before, params_before), (macs_after, params_after) = ns["before"], ns["after"]
    assert macs_after < macs_before and params_after < params_before
    # saved without model_args, reloaded bit for bit
    assert type(pruned) is type(model)
    state = model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in pruned.state_dict().items())
    printed = capsys.readouterr().out
    assert printed.startswith("PruningResult(4608 of 9216 neurons removed from 12 MLPs")
    assert len(printed) < 1000  # a short repr, not every kept index


def test_readme_heads_example_runs_verbatim_and_meets_its_budget(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = run_block(docs_block("README.md", "readme-heads"), {})  # nothing replaced
    model, result = ns["model"], ns["result"]
    assert result.config.criterion == "obs"  # the default with heads and least squares
    assert result.budget["achieved"] <= 0.3
    assert vbprune.attention_heads(model) == result.heads
    assert all(n >= 1 for n in result.heads.values())
    assert vbprune.attention_heads(vbprune.from_pretrained("deit_heads30")) == result.heads


@pytest.mark.slow
def test_timm_quickstart_runs(image_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = run_block(
        docs_block("quickstart.md", "timm"),
        {
            # no pretrained weights or ImageNet here: a small DeiT, the generated folder
            '"deit_small_patch16_224.fb_in1k", pretrained=True': '"deit_tiny_patch16_224", '
            "pretrained=False",
            '"ILSVRC/imagenet-1k", "validation"': f'"{image_folder}", "val"',
            '"ILSVRC/imagenet-1k"': f'"{image_folder}"',
            "num_train_epochs=1,": "num_train_epochs=1, use_cpu=True, save_strategy='no',",
        },
    )
    widths = ns["result"].widths
    assert sum(widths.values()) == 12 * 768 - int(0.5 * 12 * 768)  # DeiT-T: 12 MLPs of 768
    # the reloaded, distilled model has the pruned widths and was trained (moved)
    model = ns["model"]
    assert {s.name: s.width for s in vbprune.find_mlp_sites(model)} == widths
    saved = vbprune.from_pretrained(tmp_path / "deit_s_vbp50")
    assert not torch.equal(saved.blocks[0].mlp.fc1.weight, model.blocks[0].mlp.fc1.weight)
    assert (tmp_path / "deit_s_stats.safetensors").is_file()


@pytest.mark.slow
def test_hf_quickstart_runs(image_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = run_block(
        docs_block("quickstart.md", "hf"),
        {
            'AutoModelForImageClassification.from_pretrained("facebook/deit-small-patch16-224")': (
                "__import__('transformers').DeiTForImageClassification(__import__('transformers')"
                ".DeiTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, "
                "intermediate_size=64, image_size=32, patch_size=8, num_labels=3))"
            ),
            '"ILSVRC/imagenet-1k"': f'"{image_folder}"',
        },
    )
    model, pruned = ns["model"].eval(), ns["pruned"].eval()
    # the saved modeling file's twin of the stock class, loaded as remote code
    assert type(pruned).__name__ == "DeiTForImageClassification"
    assert type(pruned).__module__.endswith("modeling_vbprune")
    widths = [s.width for s in vbprune.find_mlp_sites(pruned)]
    assert widths == [s.width for s in vbprune.find_mlp_sites(model)]
    assert sum(widths) == 128 - 64
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x).logits, pruned(x).logits)


def test_no_script_shadows_an_installed_module():
    # `python scripts/X.py` puts scripts/ first on sys.path: a scripts/evaluate.py would
    # be imported in place of the `evaluate` library by vbprune itself.
    import importlib.util

    for folder in ("scripts", "benchmarks"):
        for path in (ROOT / folder).glob("*.py"):
            spec = importlib.util.find_spec(path.stem)
            assert spec is None, f"{folder}/{path.name} shadows the module at {spec.origin}"


@pytest.mark.slow
def test_every_way_of_loading_in_the_docs_works(images, tmp_path, local_hub):
    """docs/loading.md's two blocks, run verbatim against tiny pruned models pushed to a
    local Hub under the names the docs use."""
    from PIL import Image
    from transformers import ViTImageProcessor

    from testing_utils import FAMILIES, logits, randomize

    built = {}
    for family, repo_id in (("timm-vit", "me/deit-s-vbp50"), ("hf-swin", "me/swin-t-vbp50")):
        model = randomize(FAMILIES[family]())
        vbprune.prune_model(model, vbprune.VarianceCalibrator(model).run([images]), ratio=0.5)
        folder = vbprune.save_pretrained(model, tmp_path / family)
        if family.startswith("hf"):  # `vbprune prune` saves the base model's processor
            ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
        vbprune.push_folder(folder, repo_id)
        built[family] = model

    def widths(model):
        return [s.width for s in vbprune.find_mlp_sites(model)]

    timm_model = built["timm-vit"]
    ns = run_block(docs_block("loading.md", "loading-timm"), {})
    assert torch.equal(logits(ns["model"].eval(), images), logits(timm_model, images))
    for name in ("scratch", "finetune", "same"):
        assert widths(ns[name]) == widths(timm_model), name
    assert logits(ns["finetune"].eval(), images).shape == (4, 10)
    assert logits(ns["same"].eval(), images).shape == (4, 10)
    assert len(ns["features"].eval()(images)) == min(3, len(timm_model.blocks))  # the last 3
    assert ns["transform"](Image.new("RGB", (40, 40))).shape == (3, 32, 32)
    assert ns["larger"].pos_embed.shape[1] == 1 + (384 // 8) ** 2  # the tiny ViT: patch 8

    hf_model = built["hf-swin"]
    ns = run_block(docs_block("loading.md", "loading-transformers"), {})
    assert torch.equal(logits(ns["model"].eval(), images), logits(hf_model, images))
    for name in ("finetune", "scratch"):
        assert widths(ns[name]) == widths(hf_model), name
    assert logits(ns["finetune"].eval(), images).shape == (4, 10)
    with torch.no_grad():
        expected = hf_model.swin(images).last_hidden_state
        torch.testing.assert_close(ns["trunk"].eval()(images).last_hidden_state, expected)
        assert ns["backbone"].eval()(images).feature_maps
    answer = ns["classify"](Image.new("RGB", (40, 40), "red"), top_k=2)
    assert len(answer) == 2 and all("label" in a and "score" in a for a in answer)
