"""A tiny in-memory fake of the Hugging Face Hub HTTP API, for tests (standard library only).

`LocalHub` serves on 127.0.0.1 just what huggingface_hub 2.x calls for ({type} is model,
dataset or space; the resolve URL has no prefix for models, "datasets/" or "spaces/" otherwise):
POST /api/repos/create (409 + "url" if it exists), GET /api/whoami-v2 (user "tester"),
POST /api/validate-yaml (always ok), GET /api/{type}s/{repo_id}[/revision/{rev}] (info with
`sha`, `siblings`), GET /api/{type}s/{repo_id}/tree/{rev}[/{dir}][?recursive=true],
POST /api/{type}s/{repo_id}/preupload/{rev} (uploadMode "regular" for every file, so no LFS/Xet),
POST /api/{type}s/{repo_id}/commit/main (NDJSON header/file/deletedFile/deletedFolder) and
HEAD/GET /[{type}s/]{repo_id}/resolve/{rev}/{path} (X-Repo-Commit, ETag, Content-Length).

Each commit stores a full copy of the files under a new 40-hex sha; "main" is the only branch and
names the latest commit, and earlier commits stay readable by sha. Missing repos, revisions and
files answer 404 with the X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound) that the
client turns into its own errors. No X-Xet-* headers or `lfs`/`xetHash` fields are ever sent.

Limits: no authentication (tokens are ignored, private repos are readable), no pull requests,
tags or other branches, no LFS/Xet uploads, copies, pagination, Range requests or
`expand`/`blobs` metadata. Everything lives in memory and is lost on `stop()`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

USER = "tester"
_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def git_oid(data: bytes) -> str:
    """The git blob sha1 of `data`, which the Hub reports as a regular file's oid and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None):
        super().__init__(message)
        self.status, self.code, self.commit = status, code, commit


class _Repo:
    def __init__(self, private: bool):
        self.private = private
        self.commits: list[tuple[str, dict[str, bytes]]] = []  # (sha, files), oldest first
        self.commit({}, "initial commit")

    def commit(self, files: dict[str, bytes], summary: str) -> str:
        parent = self.commits[-1][0] if self.commits else ""
        listing = sorted((path, git_oid(data)) for path, data in files.items())
        seed = json.dumps([parent, summary, len(self.commits), listing]).encode()
        sha = hashlib.sha1(seed).hexdigest()
        self.commits.append((sha, files))
        return sha

    def resolve(self, revision: str) -> tuple[str, dict[str, bytes]]:
        found = [commit for commit in self.commits if revision in ("main", commit[0])]
        if not found:
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return found[-1]  # "main" matches every commit: the latest one wins


class LocalHub:
    """In-memory Hub on 127.0.0.1; `start()` returns the endpoint for `HF_ENDPOINT`."""

    def __init__(self, port: int = 0):
        self.port = port
        self.endpoint: str | None = None
        self.repos: dict[tuple[str, str], _Repo] = {}  # (repo_type, repo_id) -> repo
        self.lock = threading.Lock()
        self._server = self._thread = None

    def start(self) -> str:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None

    def __enter__(self) -> LocalHub:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def repo(self, repo_type: str, repo_id: str) -> _Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise _HubError(404, "RepoNotFound", "Repository not found")
        return repo

    def url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.endpoint}/{_PREFIX[repo_type]}{repo_id}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: LocalHub

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data, status: int = 200, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        self._send(status, body, {"Content-Type": "application/json", **(headers or {})})

    def _dispatch(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(size) if size else b""
        split = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        parts = split.path.strip("/").split("/")
        try:
            with self.hub.lock:
                self._route(parts, query, body)
        except _HubError as err:
            headers = {"X-Error-Code": err.code, "X-Repo-Commit": err.commit}
            headers = {k: v for k, v in headers.items() if v} | {"X-Error-Message": str(err)}
            self._json({"error": str(err)}, err.status, headers)
        except Exception as err:
            self._json({"error": f"LocalHub internal error: {err!r}"}, 500)

    do_GET = do_HEAD = do_POST = _dispatch

    def _route(self, parts: list[str], query: dict[str, str], body: bytes) -> None:
        method, hub = self.command, self.hub
        if parts == ["api", "whoami-v2"]:
            return self._json({"type": "user", "name": USER, "fullname": USER, "orgs": []})
        if parts == ["api", "validate-yaml"] and method == "POST":
            return self._json({"errors": [], "warnings": []})
        if parts == ["api", "repos", "create"] and method == "POST":
            return self._create(json.loads(body or b"{}"))
        if len(parts) >= 4 and parts[0] == "api" and parts[1] in _TYPES:
            repo_type, repo_id, rest = _TYPES[parts[1]], f"{parts[2]}/{parts[3]}", parts[4:]
            repo = hub.repo(repo_type, repo_id)
            action = rest[0] if rest else "info"
            rev = unquote(rest[1]) if len(rest) > 1 else "main"
            if action in ("info", "revision") and method == "GET":
                return self._info(repo_type, repo_id, repo, rev)
            if action == "tree" and method == "GET":
                prefix = unquote("/".join(rest[2:]))
                return self._tree(repo.resolve(rev)[1], prefix, query.get("recursive", ""))
            if action == "preupload" and method == "POST":
                files = repo.resolve(rev)[1]
                out = [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                    | ({"oid": git_oid(files[f["path"]])} if f["path"] in files else {})
                    for f in json.loads(body)["files"]
                ]
                return self._json({"files": out, "commitOid": repo.resolve(rev)[0]})
            if action == "commit" and method == "POST":
                return self._commit(repo_type, repo_id, repo, rev, body, query)
        elif "resolve" in parts and method in ("GET", "HEAD"):
            at = parts.index("resolve")
            repo_type = _TYPES.get(parts[0]) if at == 3 else "model"
            if repo_type and at in (2, 3) and len(parts) > at + 2:
                repo = hub.repo(repo_type, "/".join(parts[at - 2 : at]))
                sha, files = repo.resolve(unquote(parts[at + 1]))
                return self._file(sha, files, unquote("/".join(parts[at + 2 :])))
        raise _HubError(404, None, f"LocalHub does not serve {method} {self.path}")

    def _create(self, payload: dict) -> None:
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        url = self.hub.url(repo_type, repo_id)
        if (repo_type, repo_id) in self.hub.repos:
            return self._json({"error": "You already created this repo", "url": url}, 409)
        private = payload.get("visibility", "public") == "private" or bool(payload.get("private"))
        self.hub.repos[(repo_type, repo_id)] = _Repo(private)
        return self._json({"url": url, "name": repo_id})

    def _info(self, repo_type: str, repo_id: str, repo: _Repo, rev: str) -> None:
        sha, files = repo.resolve(rev)
        siblings = [
            {"rfilename": path, "size": len(data), "blobId": git_oid(data)}
            for path, data in sorted(files.items())
        ]
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        info = {"id": repo_id, "author": repo_id.split("/")[0], "sha": sha, "private": repo.private}
        info |= {"siblings": siblings, "lastModified": now, "createdAt": now, "tags": []}
        info |= {"disabled": False, "gated": False, "downloads": 0, "likes": 0}
        if repo_type == "space":
            info["sdk"] = "static"
        return self._json(info)

    def _tree(self, files: dict[str, bytes], prefix: str, recursive: str) -> None:
        prefix = prefix.strip("/")
        base = f"{prefix}/" if prefix else ""
        if prefix and not any(path.startswith(base) for path in files):
            raise _HubError(404, "EntryNotFound", f"{prefix} does not exist at this revision")
        entries: dict[str, dict] = {}
        for path, data in sorted(files.items()):
            if not path.startswith(base):
                continue
            pieces = path[len(base) :].split("/")
            depth = len(pieces) if recursive.lower() in ("1", "true") else 1
            for i in range(1, min(depth, len(pieces) - 1) + 1):  # directories on the way
                folder = base + "/".join(pieces[:i])
                oid = hashlib.sha1(folder.encode()).hexdigest()
                entries.setdefault(folder, {"type": "directory", "path": folder, "oid": oid})
            if len(pieces) <= depth:
                entries[path] = {"type": "file", "path": path, "size": len(data)}
                entries[path]["oid"] = git_oid(data)
        return self._json(list(entries.values()))

    def _commit(self, repo_type, repo_id, repo: _Repo, rev: str, body: bytes, query) -> None:
        if rev != "main" or query.get("create_pr"):
            raise _HubError(400, None, "LocalHub only commits to 'main' (no pull requests)")
        head, files = repo.resolve("main")
        files, summary = dict(files), ""
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                summary = value.get("summary", "")
                if value.get("parentCommit") not in (None, head):
                    raise _HubError(412, None, "A commit has happened since. Please refresh.")
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise _HubError(404, "EntryNotFound", "A file with this name doesn't exist")
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                files = {p: d for p, d in files.items() if not p.startswith(folder)}
            else:
                raise _HubError(400, None, f"LocalHub does not support commit entries {key!r}")
        sha = repo.commit(files, summary)
        url = f"{self.hub.url(repo_type, repo_id)}/commit/{sha}"
        return self._json({"commitUrl": url, "commitOid": sha, "pullRequestUrl": None})

    def _file(self, sha: str, files: dict[str, bytes], path: str) -> None:
        if path not in files:
            raise _HubError(404, "EntryNotFound", "Entry not found", commit=sha)
        data = files[path]
        headers = {"Content-Type": "application/octet-stream", "X-Repo-Commit": sha}
        headers["ETag"] = f'"{git_oid(data)}"'  # with X-Repo-Commit, all that hf_hub_download needs
        return self._send(200, data, headers)
