"""A Hugging Face Hub stand-in on 127.0.0.1 for round trips through the real ``huggingface_hub`` client.

Like ``fake_bot_api.py`` for the Telegram bot: the client code under test is the library's own; this server
answers the few routes a push and a download use, in the Hub's documented shapes:

* ``POST /api/repos/create``; ``POST /api/validate-yaml`` (README.md metadata);
* ``POST /api/models/{repo}/preupload/{rev}`` (every file is answered ``regular``: inline base64, so no LFS or
  Xet storage is involved) and ``POST /api/models/{repo}/commit/{rev}`` (NDJSON);
* ``HEAD|GET /{repo}/resolve/{rev}/{path}`` (``X-Repo-Commit``, ``ETag``, ``Content-Length``);
* ``GET /api/models/{repo}/revision/{rev}`` and ``GET /api/models/{repo}/tree/{rev}`` (what
  ``snapshot_download`` lists).

Point the client at it with ``HF_ENDPOINT=http://127.0.0.1:PORT`` (read by huggingface_hub at import, so
in a subprocess) or ``HfApi(endpoint=...)``. ``requests`` records every route hit, for assertions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass
class Repo:
    files: dict[str, bytes] = field(default_factory=dict)
    commit: str = "0" * 40
    commits: int = 0


class HubServer:
    """``with HubServer() as hub: ... hub.endpoint ... hub.repos["user/name"].files``."""

    def __init__(self, token: str | None = None) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[str] = []
        self.token = token  # when set, writes need "Authorization: Bearer <token>"
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, status: int, data: object, headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})

            def _error(self, status: int, code: str, message: str) -> None:
                self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _authorized(self) -> bool:
                if hub.token is None or self.headers.get("Authorization") == f"Bearer {hub.token}":
                    return True
                self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
                return False

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                path = unquote(urlsplit(self.path).path)
                hub.requests.append(f"{self.command} {path}")
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
                    repo = hub.repos.get(f"{parts[2]}/{parts[3]}")
                    if repo is None:
                        return self._error(404, "RepoNotFound", "Repository not found")
                    if parts[4] == "revision":
                        siblings = [{"rfilename": name} for name in sorted(repo.files)]
                        info = {"id": f"{parts[2]}/{parts[3]}", "sha": repo.commit, "siblings": siblings}
                        return self._json(200, {**info, "private": False})
                    tree = [
                        {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                        for name, data in sorted(repo.files.items())
                    ]
                    return self._json(200, tree)
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo = hub.repos.get(f"{parts[0]}/{parts[1]}")
                    if repo is None:
                        return self._error(404, "RepoNotFound", "Repository not found")
                    data = repo.files.get("/".join(parts[4:]))
                    if data is None:
                        headers = {"X-Repo-Commit": repo.commit}
                        self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound", **headers})
                        return
                    etag = hashlib.sha256(data).hexdigest()
                    return self._send(200, data, {"X-Repo-Commit": repo.commit, "ETag": f'"{etag}"'})
                self._error(404, "NotFound", f"no route {path}")

            def do_POST(self) -> None:
                path = unquote(urlsplit(self.path).path)
                hub.requests.append(f"POST {path}")
                body = self._body()
                if not self._authorized():
                    return
                parts = path.strip("/").split("/")
                if path == "/api/repos/create":
                    data = json.loads(body)
                    repo_id = (
                        f"{data.get('organization') or 'user'}/{data['name']}"
                        if "/" not in data["name"]
                        else data["name"]
                    )
                    if repo_id in hub.repos:
                        return self._error(409, "RepoExists", "You already created this model repo")
                    hub.repos[repo_id] = Repo()
                    return self._json(200, {"url": f"{hub.endpoint}/{repo_id}", "name": repo_id, "id": repo_id})
                if path == "/api/validate-yaml":
                    return self._json(200, {"errors": [], "warnings": []})
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("preupload", "commit"):
                    repo = hub.repos.get(f"{parts[2]}/{parts[3]}")
                    if repo is None:
                        return self._error(404, "RepoNotFound", "Repository not found")
                    if parts[4] == "preupload":
                        files = json.loads(body)["files"]
                        modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                        return self._json(200, {"files": modes})
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            repo.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                        elif item["key"] != "header":
                            return self._error(400, "BadRequest", f"unsupported commit item {item['key']}")
                    repo.commits += 1
                    repo.commit = hashlib.sha1(f"{parts[2]}/{parts[3]}:{repo.commits}".encode()).hexdigest()
                    url = f"{hub.endpoint}/{parts[2]}/{parts[3]}/commit/{repo.commit}"
                    return self._json(200, {"commitUrl": url, "commitOid": repo.commit, "pullRequestUrl": None})
                self._error(404, "NotFound", f"no route {path}")

        return Handler
