"""A stateful fake of the GitHub REST API, with real git repositories behind it.

It runs on loopback. The REST API lives under /api/v3 (as on GitHub Enterprise, so PyGithub
is pointed at it with `base_url`), and each repository is served to `git` over smart HTTP by
`git http-backend` at /<owner>/<name>.git, so clones, pushes and merges are real git.

Faults can be queued: an HTTP status for the next matching request (with headers such as
Retry-After), or a push to a base branch right before the next git push is accepted.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "ghs_fake_token_for_tests"


def git(*args: str, cwd: Path | None = None) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "HOME": "/tmp",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


@dataclass
class Fault:
    method: str
    path: str  # a regex matched against the request path
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=lambda: {"message": "injected fault"})


@dataclass
class Pull:
    number: int
    head: str
    base: str
    title: str
    body: str
    draft: bool
    state: str = "open"
    merged: bool = False
    labels: list[str] = field(default_factory=list)
    reviewers: list[str] = field(default_factory=list)
    team_reviewers: list[str] = field(default_factory=list)
    auto_merge: str | None = None


@dataclass
class Comment:
    id: int
    issue: int
    body: str


class FakeGitHub:
    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-github-")
        self.root = Path(self._tmp.name)
        self.pulls: dict[str, dict[int, Pull]] = {}
        self.comments: dict[str, list[Comment]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every API request
        self.faults: list[Fault] = []
        self.before_push: list[Callable[[], None]] = []
        self._ids = 100
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> FakeGitHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._tmp.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v3"

    def env(self, repository: str) -> dict[str, str]:
        """The environment GitHub Actions would give a job in `repository`."""
        return {
            "GITHUB_SERVER_URL": self.url,
            "GITHUB_API_URL": self.api_url,
            "GITHUB_REPOSITORY": repository,
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_RUN_ID": "4242",
            "MLOPS_GITHUB_THROTTLE": "0",
        }

    # --- repositories -------------------------------------------------------------------
    def bare(self, repository: str) -> Path:
        return self.root / f"{repository}.git"

    def create_repo(self, repository: str, files: dict[str, str], branch: str = "main") -> None:
        bare = self.bare(repository)
        bare.parent.mkdir(parents=True, exist_ok=True)
        git("init", "--quiet", "--bare", "-b", branch, str(bare))
        git("config", "http.receivepack", "true", cwd=bare)
        self.pulls[repository] = {}
        self.comments[repository] = []
        self.commit(repository, branch, files, "initial layout")

    def commit(self, repository: str, branch: str, files: dict[str, str], message: str) -> str:
        """Commit `files` onto `branch` directly, as another actor would."""
        with tempfile.TemporaryDirectory() as work:
            folder = Path(work)
            git("clone", "--quiet", str(self.bare(repository)), str(folder))
            if git("ls-remote", "origin", f"refs/heads/{branch}", cwd=folder).strip():
                git("checkout", "--quiet", branch, cwd=folder)
            else:
                git("checkout", "--quiet", "-b", branch, cwd=folder)
            for path, text in files.items():
                (folder / path).parent.mkdir(parents=True, exist_ok=True)
                (folder / path).write_text(text)
            git("add", "-A", cwd=folder)
            git("commit", "--quiet", "--allow-empty", "-m", message, cwd=folder)
            git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=folder)
            return git("rev-parse", "HEAD", cwd=folder).strip()

    def head(self, repository: str, branch: str) -> str | None:
        out = git(
            "for-each-ref",
            "--format=%(objectname)",
            f"refs/heads/{branch}",
            cwd=self.bare(repository),
        ).strip()
        return out or None

    def read(self, repository: str, branch: str, path: str) -> str:
        return git("show", f"{branch}:{path}", cwd=self.bare(repository))

    def commits(self, repository: str, branch: str) -> int:
        return int(git("rev-list", "--count", branch, cwd=self.bare(repository)).strip())

    def merge(self, repository: str, number: int) -> None:
        pull = self.pulls[repository][number]
        with tempfile.TemporaryDirectory() as work:
            folder = Path(work)
            git("clone", "--quiet", "--branch", pull.base, str(self.bare(repository)), str(folder))
            git("fetch", "--quiet", "origin", pull.head, cwd=folder)
            git(
                "merge",
                "--quiet",
                "--no-ff",
                "-m",
                f"Merge pull request #{number}",
                "FETCH_HEAD",
                cwd=folder,
            )
            git("push", "--quiet", "origin", f"HEAD:refs/heads/{pull.base}", cwd=folder)
        pull.state, pull.merged = "closed", True

    # --- REST ---------------------------------------------------------------------------
    def _pull_json(self, repository: str, pull: Pull) -> dict[str, Any]:
        api = f"{self.api_url}/repos/{repository}"
        owner = repository.split("/")[0]
        return {
            "url": f"{api}/pulls/{pull.number}",
            "html_url": f"{self.url}/{repository}/pull/{pull.number}",
            "number": pull.number,
            "node_id": f"PR_{repository}_{pull.number}",
            "state": pull.state,
            "title": pull.title,
            "body": pull.body,
            "draft": pull.draft,
            "merged": pull.merged,
            "labels": [{"name": n} for n in pull.labels],
            "head": {
                "ref": pull.head,
                "label": f"{owner}:{pull.head}",
                "sha": self.head(repository, pull.head),
            },
            "base": {"ref": pull.base, "label": f"{owner}:{pull.base}"},
            "issue_url": f"{api}/issues/{pull.number}",
            "requested_reviewers": [{"login": r} for r in pull.reviewers],
            "requested_teams": [{"slug": t} for t in pull.team_reviewers],
        }

    def _comment_json(self, repository: str, comment: Comment) -> dict[str, Any]:
        api = f"{self.api_url}/repos/{repository}"
        return {
            "id": comment.id,
            "body": comment.body,
            "url": f"{api}/issues/comments/{comment.id}",
            "issue_url": f"{api}/issues/{comment.issue}",
        }

    def api(
        self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]
    ) -> tuple[int, Any]:
        match = re.match(r"^/repos/([^/]+/[^/]+)(/.*)?$", path)
        if not match or match[1] not in self.pulls:
            return 404, {"message": "Not Found"}
        repository, rest = match[1], match[2] or ""
        pulls = self.pulls[repository]
        if rest == "" and method == "GET":
            return 200, {
                "full_name": repository,
                "name": repository.split("/")[1],
                "default_branch": "main",
                "url": f"{self.api_url}/repos/{repository}",
            }
        if rest == "/pulls" and method == "GET":
            state = query.get("state", ["open"])[0]
            found = [p for p in pulls.values() if state == "all" or p.state == state]
            if "head" in query:
                found = [
                    p for p in found if f"{repository.split('/')[0]}:{p.head}" == query["head"][0]
                ]
            return 200, [self._pull_json(repository, p) for p in found]
        if rest == "/pulls" and method == "POST":
            if self.head(repository, body["head"]) is None:
                return 422, {"message": f"head {body['head']} does not exist"}
            if any(p.head == body["head"] and p.state == "open" for p in pulls.values()):
                return 422, {"message": "A pull request already exists"}
            number = len(pulls) + 1
            pulls[number] = Pull(
                number,
                body["head"],
                body["base"],
                body["title"],
                body.get("body", ""),
                bool(body.get("draft", False)),
            )
            return 201, self._pull_json(repository, pulls[number])
        numbered = re.match(r"^/(pulls|issues)/(\d+)(/.*)?$", rest)
        if numbered and int(numbered[2]) in pulls:
            pull, tail = pulls[int(numbered[2])], numbered[3] or ""
            if tail == "" and method == "GET":
                return 200, self._pull_json(repository, pull)
            if tail == "" and method == "PATCH":
                for key in ("title", "body", "state"):
                    if key in body:
                        setattr(pull, key, body[key])
                return 200, self._pull_json(repository, pull)
            if tail == "/labels" and method in ("POST", "PUT"):
                names = body["labels"] if isinstance(body, dict) else body
                pull.labels = (pull.labels if method == "POST" else []) + [
                    n for n in names if n not in pull.labels
                ]
                return 200, [{"name": n} for n in pull.labels]
            if tail == "/requested_reviewers" and method == "POST":
                pull.reviewers += body.get("reviewers", [])
                pull.team_reviewers += body.get("team_reviewers", [])
                return 201, self._pull_json(repository, pull)
            if tail == "/comments" and method == "GET":
                return 200, [
                    self._comment_json(repository, c)
                    for c in self.comments[repository]
                    if c.issue == pull.number
                ]
            if tail == "/comments" and method == "POST":
                self._ids += 1
                comment = Comment(self._ids, pull.number, body["body"])
                self.comments[repository].append(comment)
                return 201, self._comment_json(repository, comment)
        edited = re.match(r"^/issues/comments/(\d+)$", rest)
        if edited and method == "PATCH":
            for comment in self.comments[repository]:
                if comment.id == int(edited[1]):
                    comment.body = body["body"]
                    return 200, self._comment_json(repository, comment)
        return 404, {"message": f"fake GitHub has no {method} {rest}"}

    def graphql(self, body: dict[str, Any]) -> tuple[int, Any]:
        query = body.get("query", "")
        if "enablePullRequestAutoMerge" in query:
            variables = body.get("variables", {}).get("input", {})
            repository, _, number = (
                str(variables.get("pullRequestId", "")).removeprefix("PR_").rpartition("_")
            )
            pull = self.pulls.get(repository, {}).get(int(number or 0))
            if pull is None:
                return 200, {"errors": [{"message": "no such pull request"}]}
            pull.auto_merge = str(variables.get("mergeMethod", "MERGE"))
            return 200, {"data": {"enablePullRequestAutoMerge": {"clientMutationId": None}}}
        return 200, {"data": {}}

    # --- HTTP ---------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _authorized(self) -> bool:
                header = self.headers.get("Authorization", "")
                if header == f"token {TOKEN}" or header == f"Bearer {TOKEN}":
                    return True
                import base64

                expected = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
                return header.lower() == f"basic {expected}".lower()

            def _dispatch(self, method: str) -> None:
                parsed = urlparse(self.path)
                if ".git/" in parsed.path:
                    self._git(method, parsed.path, parsed.query)
                    return
                raw = self._body()
                if not self._authorized():
                    self._send(401, {"message": "Bad credentials"})
                    return
                with fake._lock:
                    fake.requests.append((method, parsed.path))
                    for fault in list(fake.faults):
                        if fault.method == method and re.search(fault.path, parsed.path):
                            fake.faults.remove(fault)
                            self._send(fault.status, fault.body, fault.headers)
                            return
                    body = json.loads(raw) if raw else {}
                    if parsed.path == "/api/graphql":
                        status, data = fake.graphql(body)
                    else:
                        path = parsed.path.removeprefix("/api/v3")
                        status, data = fake.api(method, path, parse_qs(parsed.query), body)
                self._send(status, data)

            def _git(self, method: str, path: str, query: str) -> None:
                raw = self._body()
                if path.endswith("/git-receive-pack") and method == "POST":
                    if not self._authorized():
                        self.send_response(401)
                        self.send_header("WWW-Authenticate", 'Basic realm="fake"')
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    while fake.before_push:
                        fake.before_push.pop(0)()
                env = {
                    "GIT_PROJECT_ROOT": str(fake.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "REQUEST_METHOD": method,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(raw)),
                    "REMOTE_USER": "x-access-token",
                    "PATH": "/usr/bin:/bin:/usr/local/bin",
                }
                if self.headers.get("Content-Encoding"):
                    env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
                if self.headers.get("Git-Protocol"):
                    env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
                result = subprocess.run(
                    ["git", "http-backend"], input=raw, env=env, capture_output=True, check=False
                )
                head, _, payload = result.stdout.partition(b"\r\n\r\n")
                status = 200
                headers = []
                for line in head.decode().split("\r\n"):
                    key, _, value = line.partition(": ")
                    if key.lower() == "status":
                        status = int(value.split()[0])
                    elif key:
                        headers.append((key, value))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

            def do_PATCH(self) -> None:
                self._dispatch("PATCH")

            def do_PUT(self) -> None:
                self._dispatch("PUT")

            def do_DELETE(self) -> None:
                self._dispatch("DELETE")

        return Handler

    def api_calls(self) -> int:
        return len(self.requests)
