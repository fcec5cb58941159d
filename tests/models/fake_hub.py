"""A local stand-in for the Hugging Face hub and a plain file server, for running the real
download code of the model cache without internet.

The hub side speaks just the part of the protocol that `HfApi.model_info(repo, revision=...)`
and `hf_hub_download(repo, name, revision=..., local_dir=...)` use (huggingface_hub 2.x):

* GET  /api/models/{repo}/revision/{rev}   -> JSON with "id" and "sha" (the resolved commit)
* HEAD /{repo}/resolve/{rev}/{name}         -> X-Repo-Commit, ETag (or, for LFS files, a 302 to
  another host with X-Linked-Etag = sha256 and X-Linked-Size), Content-Length
* GET  same path (small files) or the 302 Location (LFS files) -> the bytes
* errors carry X-Error-Code: RepoNotFound, RevisionNotFound or EntryNotFound, as the hub does.

LFS files are redirected from 127.0.0.1 to `localhost` (another origin, as the hub's CDN is), so
huggingface_hub takes their metadata from the redirect itself and GETs the Location.
Every request is counted per (method, path)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

COMMIT = re.compile(r"^[0-9a-f]{40}$")
LFS_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors")


class FakeServer:
    """ThreadingHTTPServer on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self):
        self.hits: Counter = Counter()  # (method, path) -> requests
        self.log: list[tuple[str, str, int]] = []  # (method, path, status), in order
        self.files: dict[str, bytes] = {}  # plain file server: path -> bytes
        self.cut: dict[str, int] = {}  # path -> bytes sent before the connection drops
        self.repos: dict[str, FakeRepo] = {}  # hub repositories by id
        self._guard = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> "FakeServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)

    def record(self, method: str, path: str, status: int) -> None:
        with self._guard:
            self.hits[(method, path)] += 1
            self.log.append((method, path, status))

    def gets(self, name: str) -> int:
        """How many GETs delivered file `name` (from /resolve/, the CDN or the file server)."""
        return sum(n for (method, path), n in self.hits.items()
                   if method == "GET" and path.endswith(f"/{name}") and not
                   path.startswith("/api/"))

    def repo(self, repo_id: str) -> "FakeRepo":
        return self.repos.setdefault(repo_id, FakeRepo(repo_id))


class FakeRepo:
    """Commits of one hub repository ({commit: {name: bytes}}) and its refs ({branch: commit})."""

    def __init__(self, repo_id: str):
        self.id, self.commits, self.refs = repo_id, {}, {}

    def add_commit(self, commit: str, files: dict[str, bytes], *refs: str) -> None:
        assert COMMIT.match(commit)
        self.commits[commit] = dict(files)
        self.refs.update({ref: commit for ref in refs})

    def resolve(self, rev: str) -> str | None:
        return rev if rev in self.commits else self.refs.get(rev)


def _handler(server: FakeServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_HEAD(self):
            self._answer(body=False)

        def do_GET(self):
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            status, headers, data = _route(server, path)
            server.record(self.command, path, status)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data[:server.cut.get(path, len(data))])

    return Handler


def _error(status: int, code: str, **headers) -> tuple[int, dict, bytes]:
    return status, {"X-Error-Code": code, **headers}, b""


def _route(server: FakeServer, path: str) -> tuple[int, dict, bytes]:
    if path in server.files:
        return 200, {}, server.files[path]
    api = re.match(r"^/api/models/(.+)/revision/([^/]+)$", path)
    resolve = re.match(r"^/(.+)/resolve/([^/]+)/([^/]+)$", path)
    cdn = re.match(r"^/cdn/(.+)/([0-9a-f]{40})/([^/]+)$", path)
    if api:
        return _model_info(server, *api.groups())
    if resolve:
        return _resolve(server, *resolve.groups())
    if cdn and cdn.group(1) in server.repos:
        data = server.repos[cdn.group(1)].commits.get(cdn.group(2), {}).get(cdn.group(3))
        if data is not None:
            return 200, {}, data
    return 404, {}, b""


def _lookup(server: FakeServer, repo_id: str, rev: str):
    """(repo, commit) or (None, the hub's error response)."""
    repo = server.repos.get(repo_id)
    if repo is None:
        return None, _error(404, "RepoNotFound")
    commit = repo.resolve(rev)
    return (repo, commit) if commit is not None else (None, _error(404, "RevisionNotFound"))


def _model_info(server: FakeServer, repo_id: str, rev: str) -> tuple[int, dict, bytes]:
    repo, commit = _lookup(server, repo_id, rev)
    if repo is None:
        return commit
    info = {"id": repo_id, "modelId": repo_id, "sha": commit,
            "siblings": [{"rfilename": name} for name in sorted(repo.commits[commit])]}
    return 200, {"Content-Type": "application/json"}, json.dumps(info).encode()


def _resolve(server: FakeServer, repo_id: str, rev: str, name: str) -> tuple[int, dict, bytes]:
    repo, commit = _lookup(server, repo_id, rev)
    if repo is None:
        return commit
    data = repo.commits[commit].get(name)
    if data is None:
        return _error(404, "EntryNotFound", **{"X-Repo-Commit": commit})
    headers = {"X-Repo-Commit": commit}
    if name.endswith(LFS_SUFFIXES):  # LFS: the hub answers with a redirect to its CDN
        cdn = f"http://localhost:{server.port}/cdn/{repo_id}/{commit}/{name}"
        return 302, headers | {"Location": cdn, "X-Linked-Size": str(len(data)),
                               "X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"',
                               "ETag": f'"{_git_blob_sha1(data)}"'}, b""
    return 200, headers | {"ETag": f'"{_git_blob_sha1(data)}"'}, data


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
