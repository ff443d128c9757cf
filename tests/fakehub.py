"""A local stand-in for the Hugging Face Hub's file endpoints, on 127.0.0.1 only.

It answers what ``huggingface_hub.hf_hub_download`` asks:

- ``HEAD/GET /{owner}/{name}/resolve/{revision}/{path}``. Regular (git) files: 200 with ``ETag``
  (git blob sha1), ``X-Repo-Commit`` and ``Content-Length``. LFS files (``.pth``, ``.safetensors``):
  302 to a second server (the "CDN", another origin, as on the real hub) with ``X-Linked-Etag``
  (the sha256), ``X-Linked-Size`` and ``X-Repo-Commit``.
- Errors as the hub sends them: 401 + ``X-Error-Code: RepoNotFound``, 404 + ``RevisionNotFound``,
  404 + ``EntryNotFound`` (with ``X-Repo-Commit``).
- ``GET /blobs/{sha256}`` on the CDN, with ``Range: bytes=N-`` support.

Every request is recorded in :attr:`FakeHub.requests`. Servers are thread based, bound to an
ephemeral loopback port, answer with ``Connection: close`` and time out idle sockets.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".pth", ".safetensors", ".bin", ".pt")
_CHUNK = 1 << 20
_hash_cache: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Path) -> str:
    """sha256 of a file, memoised per (path, size, mtime) since test checkpoints are large."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_CHUNK), b""):
                digest.update(block)
        _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


@dataclass
class HubFile:
    """One file of a commit. ``advertised_size`` lets a test make the hub lie about the size."""

    source: Path | bytes
    lfs: bool
    sha256: str
    git_sha1: str
    size: int
    advertised_size: int | None = None

    def open_body(self):
        import io

        return open(self.source, "rb") if isinstance(self.source, Path) else io.BytesIO(self.source)


@dataclass
class Repo:
    commits: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)


def _file(source: Path | bytes, lfs: bool) -> HubFile:
    if isinstance(source, Path):
        size = source.stat().st_size
        sha = sha256_of(source)
        git = hashlib.sha1(f"blob {size}\0".encode() + sha.encode()).hexdigest()  # stand-in, content-derived
    else:
        size = len(source)
        sha = hashlib.sha256(source).hexdigest()
        git = hashlib.sha1(f"blob {size}\0".encode() + source).hexdigest()
    return HubFile(source=source, lfs=lfs, sha256=sha, git_sha1=git, size=size)


class FakeHub:
    """Repos + two loopback servers (hub and CDN). Use :meth:`start` / :meth:`stop` or a fixture."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, str]] = []  # (server, method, path)
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self.url = ""
        self.cdn_url = ""

    # -- content ----------------------------------------------------------------------------
    def commit(self, repo_id: str, files: dict[str, Path | bytes], branch: str = "main") -> str:
        """Create a commit holding ``files`` (plus the branch's previous files) and move ``branch`` to it."""
        repo = self.repos.setdefault(repo_id, Repo())
        previous = dict(repo.commits.get(repo.refs.get(branch, ""), {}))
        for name, source in files.items():
            previous[name] = _file(source, lfs=name.endswith(LFS_SUFFIXES))
        listing = "\n".join(f"{n} {f.sha256}" for n, f in sorted(previous.items()))
        commit = hashlib.sha1(f"{repo_id}\n{len(repo.commits)}\n{listing}".encode()).hexdigest()
        repo.commits[commit] = previous
        repo.refs[branch] = commit
        return commit

    def file(self, repo_id: str, name: str, revision: str = "main") -> HubFile:
        repo = self.repos[repo_id]
        return repo.commits[repo.refs.get(revision, revision)][name]

    def count(self, method: str | None = None, server: str | None = None) -> int:
        return sum(
            1 for s, m, _ in self.requests if (method is None or m == method) and (server is None or s == server)
        )

    # -- servers ----------------------------------------------------------------------------
    def start(self) -> FakeHub:
        hub_server = self._serve(_make_handler(self, "hub"))
        cdn_server = self._serve(_make_handler(self, "cdn"))
        self.url = f"http://127.0.0.1:{hub_server.server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{cdn_server.server_address[1]}"
        return self

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        self._servers.append(server)
        self._threads.append(thread)
        return server

    def stop(self) -> None:
        """Stop both servers; later requests get "connection refused"."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._servers.clear()
        self._threads.clear()
        try:  # drop pooled connections of huggingface_hub's shared client
            from huggingface_hub.utils import close_session

            close_session()
        except ImportError:  # pragma: no cover - older huggingface_hub
            pass


def _make_handler(hub: FakeHub, role: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30  # idle sockets are closed: no handler thread can hang forever

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._dispatch(body=False)

        def do_GET(self) -> None:
            self._dispatch(body=True)

        def _dispatch(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append((role, self.command, path))
            try:
                if role == "cdn":
                    self._cdn(path, body)
                else:
                    self._resolve(path, body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _reply(self, status: int, headers: dict[str, str], payload: bytes = b"", body: bool = True) -> None:
            self.send_response(status)
            headers.setdefault("Content-Length", str(len(payload)))
            headers["Connection"] = "close"
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if body and payload:
                self.wfile.write(payload)
            self.close_connection = True

        def _error(self, status: int, code: str, body: bool, commit: str | None = None) -> None:
            headers = {"X-Error-Code": code, "X-Error-Message": code, "Content-Type": "application/json"}
            if commit:
                headers["X-Repo-Commit"] = commit
            self._reply(status, headers, f'{{"error": "{code}"}}'.encode(), body)

        def _resolve(self, path: str, body: bool) -> None:
            parts = path.strip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                return self._error(404, "NotFound", body)
            repo_id, revision, filename = f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(401, "RepoNotFound", body)
            commit = repo.refs.get(revision, revision)
            if commit not in repo.commits:
                return self._error(404, "RevisionNotFound", body)
            f = repo.commits[commit].get(filename)
            if f is None:
                return self._error(404, "EntryNotFound", body, commit)
            size = str(f.advertised_size if f.advertised_size is not None else f.size)
            if f.lfs:
                headers = {
                    "Location": f"{hub.cdn_url}/blobs/{f.sha256}",
                    "X-Repo-Commit": commit,
                    "X-Linked-Etag": f'"{f.sha256}"',
                    "X-Linked-Size": size,
                    "ETag": f'"{f.git_sha1}"',
                }
                return self._reply(302, headers, b"", body)
            headers = {"X-Repo-Commit": commit, "ETag": f'"{f.git_sha1}"', "Content-Length": size}
            self.send_response(200)
            headers["Connection"] = "close"
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if body:
                self._stream(f, 0)
            self.close_connection = True

        def _cdn(self, path: str, body: bool) -> None:
            sha = path.rsplit("/", 1)[-1]
            match = [
                f
                for repo in hub.repos.values()
                for files in repo.commits.values()
                for f in files.values()
                if f.sha256 == sha
            ]
            if not path.startswith("/blobs/") or not match:
                return self._reply(404, {}, b"not found", body)
            f = match[0]
            start = 0
            status = 200
            headers = {"ETag": f'"{sha}"', "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
            range_header = self.headers.get("Range", "")
            if range_header.startswith("bytes=") and range_header.endswith("-"):
                start = int(range_header[len("bytes=") : -1])
                status = 206
                headers["Content-Range"] = f"bytes {start}-{f.size - 1}/{f.size}"
            headers["Content-Length"] = str(f.size - start)
            headers["Connection"] = "close"
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if body:
                self._stream(f, start)
            self.close_connection = True

        def _stream(self, f: HubFile, start: int) -> None:
            with f.open_body() as src:
                src.seek(start)
                for block in iter(lambda: src.read(_CHUNK), b""):
                    self.wfile.write(block)

    return Handler
