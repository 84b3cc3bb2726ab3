"""Who may talk to the viewer, and what every response carries.

- Bound to a loopback address, the Host header must name loopback too, so a foreign site
  whose DNS name points at 127.0.0.1 (DNS rebinding) gets nothing.
- Bound elsewhere, every request but the static files needs the token: an
  ``Authorization: Bearer T`` header, or the cookie a page sets after ``?token=T``.
- Requests that change anything (POST, PUT, PATCH, DELETE) are refused when the server is
  read-only, when they come from another origin (Origin, Sec-Fetch-Site), and unless they
  carry the token in the header or come from the viewer's own pages (same origin); bodies
  must be JSON, which an HTML form elsewhere cannot send.
- Tokens are compared in constant time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

__all__ = ["CSP", "COOKIE", "Guard", "is_loopback"]

COOKIE = "promptlab_token"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _refuse(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


@dataclass(frozen=True)
class Guard:
    """The checks above for a server bound to `host` with `token`."""

    host: str
    token: str
    read_only: bool = False

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def _token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def _bearer(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def _same_origin(self, request: Request) -> bool | None:
        """True/False when the browser said where the request comes from; None if not."""
        site = request.headers.get("sec-fetch-site")
        origin = request.headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            return (parts.scheme == request.url.scheme
                    and parts.netloc == request.headers.get("host", ""))
        if site is not None:
            return site in ("same-origin", "none")
        return None

    async def __call__(self, request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await self._check(request, call_next)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def _check(self, request: Request,
                     call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        host = _host_name(request.headers.get("host", ""))
        if self.loopback and not is_loopback(host):
            return _refuse(421, f"host '{host[:100]}' is not this server; open it as "
                                "http://127.0.0.1 (a loopback server answers loopback names "
                                "only)")
        bearer_ok = self._token_ok(self._bearer(request))
        cookie_ok = self._token_ok(request.cookies.get(COOKIE))
        if not self.loopback and not request.url.path.startswith("/static/"):
            query = request.query_params.get("token")
            if query is not None and request.method == "GET" and self._token_ok(query):
                clean = request.url.remove_query_params("token")
                target = clean.path + (f"?{clean.query}" if clean.query else "")
                redirect = RedirectResponse(target, status_code=303)
                redirect.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
                return redirect
            if not (bearer_ok or cookie_ok):
                return _refuse(401, "this server needs its token: send 'Authorization: "
                                    "Bearer TOKEN', or open a page once with ?token=TOKEN")
        if request.method in UNSAFE:
            refused = self._check_change(request, bearer_ok)
            if refused is not None:
                return refused
        return await call_next(request)

    def _check_change(self, request: Request, bearer_ok: bool) -> Response | None:
        if self.read_only:
            return _refuse(403, "this server is read-only (promptlab serve --read-only): "
                                "nothing can be changed through it")
        same = self._same_origin(request)
        if same is False:
            return _refuse(403, "cross-origin request refused: changes come from the "
                                "viewer's own pages or with the token")
        if not bearer_ok and same is not True:
            return _refuse(403, "send the token ('Authorization: Bearer TOKEN', printed "
                                "when the server started) or use the viewer's own pages")
        if request.method != "DELETE":
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                return _refuse(415, "send the body as JSON (Content-Type: application/json)")
        return None
