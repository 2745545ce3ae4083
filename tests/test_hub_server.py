"""The fake Hub in tests/hub_server.py, driven by the real huggingface_hub client over HTTP."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def _make_folder(folder: Path) -> dict[str, bytes]:
    folder.mkdir()
    files = {
        "config.json": json.dumps({"model_type": "vit", "hidden_size": 32}).encode(),
        "model.safetensors": os.urandom(100 * 1024),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def _read_tree(root: str) -> dict[str, bytes]:
    base = Path(root)
    return {
        path.relative_to(base).as_posix(): path.read_bytes()
        for path in base.rglob("*")
        if path.is_file() and ".cache" not in path.parts
    }


def test_upload_then_snapshot_download_round_trips_bytes(local_hub, tmp_path):
    from huggingface_hub import HfApi, snapshot_download

    api = HfApi()
    assert api.endpoint == local_hub
    url = api.create_repo("tester/tiny", private=True, exist_ok=True)
    assert url.repo_id == "tester/tiny"
    assert api.create_repo("tester/tiny", exist_ok=True).repo_id == "tester/tiny"

    files = _make_folder(tmp_path / "upload")
    commit = api.upload_folder(repo_id="tester/tiny", folder_path=tmp_path / "upload")
    assert len(commit.oid) == 40

    info = api.model_info("tester/tiny", revision="main")
    assert info.sha == commit.oid
    assert sorted(s.rfilename for s in info.siblings) == sorted(files)
    assert info.private is True

    local = snapshot_download("tester/tiny")
    assert Path(local).is_relative_to(os.environ["HF_HUB_CACHE"])
    assert Path(local).name == commit.oid
    assert _read_tree(local) == files


def test_hf_hub_download_and_listing(local_hub, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download, list_repo_files

    api = HfApi()
    api.create_repo("tester/listed", exist_ok=True)
    files = _make_folder(tmp_path / "upload")
    (tmp_path / "upload" / "sub").mkdir()
    (tmp_path / "upload" / "sub" / "nested.txt").write_bytes(b"nested")
    files["sub/nested.txt"] = b"nested"
    api.upload_folder(repo_id="tester/listed", folder_path=tmp_path / "upload")

    path = hf_hub_download("tester/listed", "model.safetensors")
    assert Path(path).read_bytes() == files["model.safetensors"]
    nested = hf_hub_download("tester/listed", "nested.txt", subfolder="sub")
    assert Path(nested).read_bytes() == b"nested"

    assert sorted(list_repo_files("tester/listed")) == sorted(files)
    tree = list(api.list_repo_tree("tester/listed", recursive=True))
    sizes = {entry.path: getattr(entry, "size", None) for entry in tree}
    assert sizes == {**{name: len(data) for name, data in files.items()}, "sub": None}
    assert all(getattr(entry, "lfs", None) is None for entry in tree)
    top = {entry.path for entry in api.list_repo_tree("tester/listed")}
    assert top == {"config.json", "model.safetensors", "sub"}


def test_missing_repo_and_file_raise_the_client_errors(local_hub):
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    api = HfApi()
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("tester/nope")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("tester/nope", "config.json")
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("tester/nope")
    assert api.repo_exists("tester/nope") is False

    api.create_repo("tester/empty")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("tester/empty", "config.json")


def test_second_commit_is_visible_on_main(local_hub, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    api = HfApi()
    api.create_repo("tester/evolving", exist_ok=True)
    files = _make_folder(tmp_path / "upload")
    first = api.upload_folder(repo_id="tester/evolving", folder_path=tmp_path / "upload")
    assert _read_tree(snapshot_download("tester/evolving", revision="main")) == files

    second = api.upload_file(
        path_or_fileobj=b"second commit\n",
        path_in_repo="notes.txt",
        repo_id="tester/evolving",
    )
    assert second.oid != first.oid
    local = snapshot_download("tester/evolving", revision="main")
    assert Path(local).name == second.oid
    assert _read_tree(local) == {**files, "notes.txt": b"second commit\n"}
    path = hf_hub_download("tester/evolving", "notes.txt", revision="main")
    assert Path(path).read_bytes() == b"second commit\n"

    # The old commit is still readable by sha, without the new file.
    assert _read_tree(snapshot_download("tester/evolving", revision=first.oid)) == files

    api.delete_file("notes.txt", repo_id="tester/evolving")
    assert sorted(api.list_repo_files("tester/evolving")) == sorted(files)


def test_whoami_model_card_and_module_level_functions(local_hub):
    import huggingface_hub as hf
    from huggingface_hub import ModelCard

    assert hf.whoami()["name"] == "tester"
    hf.create_repo("tester/carded", exist_ok=True)  # module-level copy of HfApi
    card = ModelCard("---\nlicense: mit\n---\n# Tiny\n")
    card.push_to_hub("tester/carded")
    assert hf.list_repo_files("tester/carded") == ["README.md"]
    assert "# Tiny" in ModelCard.load("tester/carded").text
