"""The fake's HTTP routes: one handler method per (method, route template), plus `/_fake/...` introspection."""

from __future__ import annotations

import email.parser
import email.policy
import json
import math
import re
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from .control import control
from .schemas import MODELS, model_json, validate_input
from .state import (
    ApiError,
    FileRecord,
    PredictionRecord,
    decode_cursor,
    encode_cursor,
    iso,
    parse_cancel_after,
    parse_prefer_wait,
    parse_time,
)

_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("/v1/account", re.compile(r"/v1/account")),
    ("/v1/files", re.compile(r"/v1/files")),
    ("/v1/files/{id}", re.compile(r"/v1/files/(?P<id>[^/]+)")),
    ("/v1/files/{id}/download", re.compile(r"/v1/files/(?P<id>[^/]+)/download")),
    ("/v1/models/{owner}/{name}", re.compile(r"/v1/models/(?P<owner>[^/]+)/(?P<name>[^/]+)")),
    ("/v1/models/{owner}/{name}/predictions",
     re.compile(r"/v1/models/(?P<owner>[^/]+)/(?P<name>[^/]+)/predictions")),
    ("/v1/predictions", re.compile(r"/v1/predictions")),
    ("/v1/predictions/{id}", re.compile(r"/v1/predictions/(?P<id>[^/]+)")),
    ("/v1/predictions/{id}/cancel", re.compile(r"/v1/predictions/(?P<id>[^/]+)/cancel")),
    ("/v1/outputs/{id}.mp4", re.compile(r"/v1/outputs/(?P<id>[^/]+)\.mp4")),
]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not block shutdown
    request_queue_size = 1024  # hundreds of clients connect at once in load tests (socketserver's default: 5)
    fake: Any  # the FakeReplicate serving (typed loosely: the server module imports this one)
    ssl_context: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake here, in the per-connection thread, so a slow or broken client can't stall accept().
        if self.ssl_context is not None:
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response (e.g. truncate_mode="abort") are expected; keep stderr quiet.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | ssl.SSLError | TimeoutError):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx pools connections
    server_version = "FakeReplicate/1"
    timeout = 120  # drop idle keep-alive connections eventually
    server: _HTTPServer

    @property
    def fake(self) -> Any:  # FakeReplicate
        return self.server.fake

    def log_message(self, format: str, *args: Any) -> None:
        # The default logs to stderr on every request; only the request line when verbose (no headers).
        if self.fake.verbose:
            sys.stderr.write(f"fake-replicate: {self.address_string()} {format % args}\n")

    # -- plumbing ---------------------------------------------------------------------------------
    def _base(self) -> str:
        # URLs we hand out use the Host the client reached us by (works behind 0.0.0.0 or a proxy name).
        host = self.headers.get("Host")
        return f"{self.fake.scheme}://{host}" if host else self.fake.base_url

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json",
              headers: dict[str, str] | None = None, length: int | None = None) -> None:
        if self._route is not None:
            # Record before the client can see the response, so a test reading the log right after
            # a request always finds it there.
            self.fake._record(self.command, self.path, self._route, status, self.headers.get("Cancel-After"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _error(self, err: ApiError) -> None:
        self._json(err.status, {"title": _TITLES.get(err.status, "Error"), "detail": err.detail,
                                "status": err.status, **err.extra}, headers=err.headers)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        self._route: str | None = None
        body = self._read_body()  # always drain the body, or keep-alive would desync on early errors
        path = urlsplit(self.path).path.rstrip("/") or "/"
        if path.startswith("/_fake/") or path == "/_fake":
            try:
                control(self.fake, self.command, path, body, self._json)
            except ApiError as err:
                self._error(err)
            return
        route, params = "(unknown)", {}
        for template, pattern in _ROUTES:
            m = pattern.fullmatch(path)
            if m:
                route, params = template, m.groupdict()
                break
        self._route = route
        try:
            if path.startswith("/v1/") and (route != "/v1/outputs/{id}.mp4" or self.fake.config.auth_outputs):
                self._check_auth()
            if route == "(unknown)":
                raise ApiError(404, "Not found.")
            handler = getattr(self, "_" + self.command.lower() + _HANDLER_SUFFIX.get(route, ""), None)
            if handler is None or route not in _HANDLER_SUFFIX:
                raise ApiError(405, "Method not allowed.")
            handler(body, **params)
        except ApiError as err:
            self._error(err)
        except Exception as exc:  # a bug here should be a 500 the client sees, not a hung connection
            self._json(500, {"title": "Internal Server Error", "detail": f"fake server error: {exc}",
                             "status": 500})
            raise

    def _check_auth(self) -> None:
        # Never log or store the header: it may hold a real token by mistake.
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        token = token.strip()
        expected = self.fake.config.expected_token
        if scheme.lower() not in ("bearer", "token") or not token or (expected is not None and token != expected):
            raise ApiError(401, "Unauthenticated")

    # -- /v1/files --------------------------------------------------------------------------------
    def _post_files(self, body: bytes) -> None:
        if self.fake._take("fail_uploads"):
            raise ApiError(500, "Internal server error while storing the file.")
        ctype = self.headers.get("Content-Type", "")
        if not ctype.lower().startswith("multipart/form-data"):
            raise ApiError(400, "Expected multipart/form-data with a 'content' file field.")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body
        )
        content, metadata = None, {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name == "content":
                content = part
            elif name == "metadata":
                try:
                    metadata = json.loads(part.get_payload(decode=True) or b"{}")
                except ValueError as exc:
                    raise ApiError(400, "metadata must be a JSON object.") from exc
        if content is None:
            raise ApiError(400, "Missing multipart field 'content'.")
        data = content.get_payload(decode=True) or b""
        f = self.fake._create_file(content.get_filename() or "file", content.get_content_type(), data,
                                   metadata if isinstance(metadata, dict) else {})
        self._json(201, f.json(self._base()))

    def _get_account(self, body: bytes) -> None:
        # The token owner, as the real API answers; clients use it to check a token before spending.
        self._json(200, {"type": "user", "username": "fake-replicate", "name": "Fake Replicate", "github_url": None})

    def _get_files(self, body: bytes) -> None:
        with self.fake._lock:
            files = list(self.fake._files.values())
        self._json(200, {"results": [f.json(self._base()) for f in files], "next": None, "previous": None})

    def _lookup(self, table: dict[str, Any], id: str) -> Any:
        with self.fake._lock:
            found = table.get(id)
        if found is None:
            raise ApiError(404, "Not found.")
        return found

    def _lookup_file(self, id: str) -> FileRecord:
        return self._lookup(self.fake._files, id)

    def _get_file(self, body: bytes, id: str) -> None:
        self._json(200, self._lookup_file(id).json(self._base()))

    def _delete_file(self, body: bytes, id: str) -> None:
        f = self._lookup_file(id)
        with self.fake._lock:
            self.fake._files.pop(id, None)
        f.path.unlink(missing_ok=True)
        self._send(204, content_type="text/plain")

    def _get_file_download(self, body: bytes, id: str) -> None:
        f = self._lookup_file(id)
        self._send(200, f.path.read_bytes(), content_type=f.content_type)

    _head_file_download = _get_file_download

    # -- predictions ------------------------------------------------------------------------------
    def _get_model(self, body: bytes, owner: str, name: str) -> None:
        model = f"{owner}/{name}"
        self._check_model(model)
        with self.fake._lock:
            patches = dict(self.fake.config.schema_patches)
        self._json(200, model_json(model, self._base(), iso(self.fake.started_at), patches))

    def _check_model(self, model: str) -> None:
        gone = self.fake.config.gone_models.get(model)
        if gone == 410:
            raise ApiError(410, f"Model {model} is deprecated and no longer available.")
        if gone is not None or model not in MODELS:
            raise ApiError(404, "The requested resource could not be found.")

    def _post_model_predictions(self, body: bytes, owner: str, name: str) -> None:
        model = f"{owner}/{name}"
        over = self.fake.throttled()
        if over is not None:  # the real API's words and header
            raise ApiError(429, f"Request was throttled. Your rate limit resets in ~{over}s.",
                           headers={"Retry-After": str(over)})
        if self.fake._take("rate_limit_creates"):
            wait = max(0, math.ceil(self.fake.config.retry_after))
            raise ApiError(429, f"Request was throttled. Expected available in {wait} second"
                           f"{'' if wait == 1 else 's'}.", headers={"Retry-After": str(wait)})
        if self.fake._take("server_error_creates"):
            status = self.fake.config.server_error_status
            raise ApiError(status, "The service is temporarily unavailable. Please try again later.")
        self._check_model(model)
        try:
            data = json.loads(body or b"null")
        except ValueError as exc:
            raise ApiError(400, "Request body is not valid JSON.") from exc
        if not isinstance(data, dict) or "input" not in data:
            raise ApiError(422, "- (root): input is required\n", title="Input validation failed",
                           invalid_fields=[{"type": "required", "field": "(root)",
                                            "description": "input is required"}])
        with self.fake._lock:
            patches = dict(self.fake.config.schema_patches)
        problems = validate_input(model, data["input"], patches)
        if problems:
            detail = "".join(f"- {p['field']}: {p['description']}\n" for p in problems)
            raise ApiError(422, detail, title="Input validation failed", invalid_fields=problems)
        cancel_after = None
        header = self.headers.get("Cancel-After")
        if header is not None:
            seconds = parse_cancel_after(header)
            if seconds is None:
                raise ApiError(400, f"Invalid Cancel-After header {header[:40]!r}: expected a duration such as 90s, "
                                    "5m or 1h30m.")
            cancel_after = (header, seconds)
        prefer = self.headers.get("Prefer")
        p = self.fake._create_prediction(model, data, prefer, cancel_after)
        if self.fake._take("create_then_error"):
            # Created (and running, and billed) -- but the client only hears of a gateway failure.
            raise ApiError(502, "Bad gateway: the upstream server did not answer in time.")
        wait = parse_prefer_wait(prefer, self.fake.config.max_wait)
        if wait:
            self.fake._wait(p, wait)
        with self.fake._lock:
            # The real API answers a create with a terminal prediction or one that says "starting" --
            # replicate.run() relies on it: it treats any other status after Prefer: wait as finished.
            status = p.status if p.terminal else "starting"
            self._json(201, p.json(self._base(), status=status))

    def _get_predictions(self, body: bytes) -> None:
        query = parse_qs(urlsplit(self.path).query)
        cursor = (query.get("cursor") or [None])[0]
        size = max(1, self.fake.config.list_page_size)
        base = self._base()
        # created_after / created_before narrow the listing, as on the real API; cursors keep them.
        window = {k: query[k][0] for k in ("created_after", "created_before") if query.get(k)}
        bounds = {k: parse_time(v, k) for k, v in window.items()}
        carry = "".join(f"&{k}={quote(v)}" for k, v in window.items())
        with self.fake._lock:
            everything = sorted(self.fake._predictions.values(), key=lambda p: p.seq, reverse=True)
            for p in everything:
                self.fake._advance(p)
            if "created_after" in bounds:
                everything = [p for p in everything if p.created_at > bounds["created_after"]]
            if "created_before" in bounds:
                everything = [p for p in everything if p.created_at < bounds["created_before"]]
            if cursor is None:
                page = everything[:size]
            else:
                direction, seq = decode_cursor(cursor)
                if direction == "before":  # a `next` page: older than the last one seen
                    page = [p for p in everything if p.seq < seq][:size]
                else:  # a `previous` page: the ones just newer than the first one seen
                    page = [p for p in everything if p.seq > seq][-size:]
            older = bool(page) and everything[-1].seq < page[-1].seq
            newer = bool(page) and everything[0].seq > page[0].seq
            cursor_url = f"{base}/v1/predictions?cursor="
            ttl = self.fake.config.output_ttl
            data = {
                "next": f"{cursor_url}{encode_cursor('before', page[-1].seq)}{carry}" if older else None,
                "previous": f"{cursor_url}{encode_cursor('after', page[0].seq)}{carry}" if newer else None,
                "results": [p.json(base, ttl=ttl) for p in page],
            }
            if self.fake.config.list_omits_input:
                for item in data["results"]:
                    del item["input"]
        self._json(200, data)

    def _lookup_prediction(self, id: str) -> PredictionRecord:
        return self._lookup(self.fake._predictions, id)

    def _get_prediction(self, body: bytes, id: str) -> None:
        if self.fake._take("server_error_gets"):
            raise ApiError(503, "The service is temporarily unavailable. Please try again later.")
        p = self._lookup_prediction(id)
        with self.fake._lock:
            self.fake._advance(p)
            self._json(200, p.json(self._base(), ttl=self.fake.config.output_ttl))

    def _post_prediction_cancel(self, body: bytes, id: str) -> None:
        p = self._lookup_prediction(id)
        self.fake._cancel(p)
        with self.fake._lock:
            self._json(200, p.json(self._base(), ttl=self.fake.config.output_ttl))

    def _get_output(self, body: bytes, id: str) -> None:
        with self.fake._lock:
            p = self.fake._predictions.get(id)
            if p is not None:
                self.fake._advance(p)
        if p is None or p.status != "succeeded" or p.output_path is None or p.data_removed(
                self.fake.config.output_ttl):
            raise ApiError(404, "Not found.")
        if self.fake._take("expire_outputs"):
            raise ApiError(410, "This output has expired.")
        data = p.output_path.read_bytes()
        if self.command == "GET" and self.fake._take("truncate_downloads"):
            half = data[: len(data) // 2]
            if self.fake.config.truncate_mode == "abort":
                # Promise the whole file, send half, hang up: the client's HTTP layer sees the short read.
                self._send(200, half, content_type="video/mp4", length=len(data))
                self.close_connection = True
            else:
                # A self-consistent short response: only inspecting the file reveals the damage.
                self._send(200, half, content_type="video/mp4")
            return
        self._send(200, data, content_type="video/mp4")

    _head_output = _get_output

# Route template -> method-name suffix; the handler is "_" + method + suffix (e.g. _post_files).
_HANDLER_SUFFIX = {
    "/v1/account": "_account",
    "/v1/files": "_files",
    "/v1/files/{id}": "_file",
    "/v1/files/{id}/download": "_file_download",
    "/v1/models/{owner}/{name}": "_model",
    "/v1/models/{owner}/{name}/predictions": "_model_predictions",
    "/v1/predictions": "_predictions",
    "/v1/predictions/{id}": "_prediction",
    "/v1/predictions/{id}/cancel": "_prediction_cancel",
    "/v1/outputs/{id}.mp4": "_output",
}

_TITLES = {
    400: "Bad Request", 401: "Unauthenticated", 404: "Not found", 405: "Method not allowed",
    422: "Input validation failed", 429: "Request was throttled", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable",
}


