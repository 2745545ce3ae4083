"""The built wheel is what a package index would get: its files, its metadata and its
entry point; and a missing optional dependency is one clear line, not a traceback."""

from __future__ import annotations

import configparser
import email
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from vbprune._extras import require
from vbprune._version import __version__
from vbprune.core.errors import MissingDependencyError, VBPruneError

ROOT = Path(__file__).resolve().parents[1]
# what a source distribution holds: enough to build the wheel
SOURCES = [
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
    "LICENSE",
    "model_cards",
    "src",
]
URL = "https://github.com/vbprune/vbprune"


def test_missing_extra_is_one_clear_error():
    with pytest.raises(MissingDependencyError) as caught:
        require("no_such_module_xyz", "demo", "vbprune demo")
    message = str(caught.value)
    assert message == 'vbprune demo needs no_such_module_xyz: pip install "vbprune[demo]"'
    assert isinstance(caught.value, ImportError)
    assert isinstance(caught.value, VBPruneError)
    # the distribution's name, not the import name
    with pytest.raises(MissingDependencyError, match=r'needs scikit-learn: pip install "vbprune'):
        require("sklearn.no_such_module_xyz", "demo", "vbprune demo")


def test_require_returns_the_module_and_keeps_a_broken_install_s_error(tmp_path, monkeypatch):
    assert require("json.decoder", "demo", "x").JSONDecoder is not None
    (tmp_path / "vbprune_broken_xyz.py").write_text("import vbprune_missing_inner_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as caught:  # installed but broken: its own error
        require("vbprune_broken_xyz", "demo", "x")
    assert not isinstance(caught.value, MissingDependencyError)
    assert caught.value.name == "vbprune_missing_inner_xyz"


def test_demo_without_scikit_learn_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    from vbprune.cli import main

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # as if not installed
    assert main(["demo", "--output", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("vbprune demo: error: ")
    assert lines[0].endswith('needs scikit-learn: pip install "vbprune[demo]"')
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel built from a copy of the sources (no build/ or egg-info in the checkout)."""
    pytest.importorskip("build")
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)]
    done = subprocess.run(command, cwd=source, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (path,) = dist.glob("*.whl")
    assert path.name == f"vbprune-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(path) as archive:
        yield archive


def _metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    return email.message_from_bytes(wheel.read(f"vbprune-{__version__}.dist-info/METADATA"))


def _requirements(metadata) -> list:
    from packaging.requirements import Requirement

    return [Requirement(line) for line in metadata.get_all("Requires-Dist")]


def _name(requirement) -> str:
    return re.sub(r"[-_.]+", "-", requirement.name).lower()


@pytest.mark.slow
def test_wheel_files_entry_point_and_metadata(wheel):
    names = set(wheel.namelist())
    for name in ["vbprune/model_cards/vbprune.md", "vbprune/hf_remote/modeling_vbprune.py",
                 "vbprune/hf_remote/surgery.py", "vbprune/core/surgery.py", "vbprune/py.typed",
                 "vbprune/_extras.py", "vbprune/cli.py"]:  # fmt: skip
        assert name in names, name
    # every module of the source tree, and no tests
    sources = {
        path.relative_to(ROOT / "src").as_posix()
        for path in (ROOT / "src" / "vbprune").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert sources <= names, sorted(sources - names)
    assert not [name for name in names if name.startswith("tests/")]
    assert (ROOT / "model_cards" / "vbprune.md").read_bytes() == wheel.read(
        "vbprune/model_cards/vbprune.md"
    )

    entry_points = configparser.ConfigParser()
    entry_points.read_string(
        wheel.read(f"vbprune-{__version__}.dist-info/entry_points.txt").decode()
    )
    assert dict(entry_points["console_scripts"]) == {"vbprune": "vbprune.cli:main"}

    metadata = _metadata(wheel)
    assert metadata["Name"] == "vbprune"
    assert metadata["Version"] == __version__
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["Author"] == "vbprune developers"
    assert "variance-based pruning" in metadata["Keywords"].split(",")
    classifiers = set(metadata.get_all("Classifier"))
    assert {
        "Intended Audience :: Science/Research",
        "Intended Audience :: Developers",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Typing :: Typed",
        "Operating System :: OS Independent",
    } <= classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    urls = dict(line.split(", ", 1) for line in metadata.get_all("Project-URL"))
    assert {"Homepage", "Documentation", "Repository", "Issues"} <= set(urls)
    assert all(url.startswith(URL) for url in urls.values()), urls


@pytest.mark.slow
def test_wheel_requirements_are_lower_bounds(wheel):
    requirements = _requirements(_metadata(wheel))
    base = {_name(r): r for r in requirements if r.marker is None}
    extras: dict[str, set[str]] = {}
    for requirement in requirements:
        if requirement.marker is not None:
            extra = re.search(r'extra == "([^"]+)"', str(requirement.marker)).group(1)
            extras.setdefault(extra, set()).add(_name(requirement))

    assert {s.operator for s in base["torch"].specifier} == {">="}
    assert {s.operator for s in base["timm"].specifier} == {">="}
    for requirement in base.values():  # no upper bound, no pin: users may upgrade
        assert {s.operator for s in requirement.specifier} <= {">="}, requirement
    assert "torchvision" not in base and all("torchvision" not in e for e in extras.values())
    assert {"pillow", "jinja2", "transformers", "accelerate", "datasets"} <= set(base)
    assert "scikit-learn" not in base and "matplotlib" not in base
    assert {"scikit-learn", "matplotlib"} <= extras["demo"]
    assert {"onnx", "onnxscript", "onnxruntime"} <= extras["onnx"]
    assert {"vbprune", "pytest", "ruff", "build"} <= extras["dev"]  # vbprune[demo,onnx]


@pytest.mark.slow
def test_long_description_links_work_on_a_package_index(wheel):
    metadata = _metadata(wheel)
    assert metadata["Description-Content-Type"].startswith("text/markdown")
    description = metadata.get_payload()
    assert description.startswith("# vbprune")
    assert "](docs/" not in description
    relative = re.findall(r"\]\((?![a-z]+://|#|mailto:)([^)]*)\)", description)
    assert relative == [], relative
    assert f"]({URL}/blob/main/docs/method.md)" in description
