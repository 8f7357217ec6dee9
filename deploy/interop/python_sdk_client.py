#!/usr/bin/env python3
"""Interop check: the official Python MCP SDK against mock-target (or any Nextcloud-like MCP server).

The SDK's own OAuthClientProvider does everything a real MCP client does: it gets the 401 from
/mcp, discovers the authorization server (RFC 9728 resource metadata, then RFC 8414 metadata),
registers itself (RFC 7591 DCR) and runs the authorization-code flow with PKCE S256. The only
part played here is the person at the browser: `redirect_handler` opens the authorization URL
with an HTTP client that keeps cookies, fills in the login form (and approves a consent page if
one is shown), and takes `code`, `state` and `iss` from the redirect to the callback URL, which
it does not follow; `callback_handler` hands them to the SDK.

Then it initializes an MCP session, lists the tools, creates a note, reads it back, and prints
one JSON line. Exit code 0 on success; 1 with a message on stderr otherwise (2 for bad usage).

    python python_sdk_client.py http://127.0.0.1:PORT/mcp alice pw [-v]

Tested with mcp 2.3.0 (httpx2) and mcp 1.30.0 (httpx); older 1.x releases fall back to streamablehttp_client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
import uuid
from html.parser import HTMLParser
from importlib.metadata import version as pkg_version
from typing import Any
from urllib.parse import parse_qs, urljoin, urlparse

try:  # mcp >= 2
    import httpx2 as httpx
except ImportError:  # mcp 1.x
    import httpx  # type: ignore[no-redef]

from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

try:  # mcp >= 1.2x: the transport takes a ready httpx client (which carries the OAuth provider)
    from mcp.client.streamable_http import streamable_http_client
except ImportError:  # older mcp 1.x
    streamable_http_client = None  # type: ignore[assignment]
    from mcp.client.streamable_http import streamablehttp_client  # type: ignore[attr-defined]

try:  # mcp >= 2: callback_handler returns AuthorizationCodeResult (code, state, RFC 9207 iss)
    from mcp.shared.auth import AuthorizationCodeResult
except ImportError:  # mcp 1.x: callback_handler returns (code, state)
    AuthorizationCodeResult = None  # type: ignore[assignment,misc]

VERBOSE = False
MAX_BROWSER_STEPS = 10


def log(msg: str) -> None:
    if VERBOSE:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class InteropError(Exception):
    """A step failed; the message says which and what the server answered."""


# --------------------------------------------------------------------------- token storage


class MemoryTokenStorage(TokenStorage):
    """In-memory TokenStorage: nothing survives the process."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


# --------------------------------------------------------------------------- HTML forms


class FormParser(HTMLParser):
    """Collects every <form> with its inputs and submit buttons (stdlib only)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None
        self._button: dict[str, str] | None = None
        self.text: list[str] = []  # visible text, for error messages

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._current = {
                "action": a.get("action", ""),
                "method": a.get("method", "get").lower(),
                "inputs": [],  # (name, type, value)
                "buttons": [],  # {"name","value","text"}
            }
            self.forms.append(self._current)
        elif self._current is None:
            return
        elif tag == "input":
            typ = a.get("type", "text").lower()
            if typ in ("submit", "image"):
                self._current["buttons"].append({"name": a.get("name", ""), "value": a.get("value", ""), "text": a.get("value", "")})
            elif a.get("name"):
                if typ in ("checkbox", "radio") and "checked" not in a:
                    return
                self._current["inputs"].append((a["name"], typ, a.get("value", "")))
        elif tag == "button":
            if a.get("type", "submit").lower() == "submit":
                self._button = {"name": a.get("name", ""), "value": a.get("value", ""), "text": ""}
                self._current["buttons"].append(self._button)
        elif tag in ("select", "textarea") and a.get("name"):
            self._current["inputs"].append((a["name"], tag, ""))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(data.strip())
        if self._button is not None:
            self._button["text"] += data.strip()

    def handle_endtag(self, tag: str) -> None:
        if tag == "button":
            self._button = None
        elif tag == "form":
            self._current = None


def visible_text(html: str, limit: int = 300) -> str:
    parser = FormParser()
    parser.feed(html)
    return " ".join(parser.text)[:limit]


def _has_login_form(html: str) -> bool:
    parser = FormParser()
    parser.feed(html)
    return any(any(t == "password" for _, t, _ in f["inputs"]) for f in parser.forms)


APPROVE_WORDS = ("allow", "approve", "accept", "authorize", "authorise", "grant", "consent", "yes", "continue")
DENY_WORDS = ("deny", "reject", "cancel", "decline", "no")


def _pick_approve_button(buttons: list[dict[str, str]]) -> dict[str, str] | None:
    def words(b: dict[str, str]) -> str:
        return f"{b['name']} {b['value']} {b['text']}".lower()

    for b in buttons:
        if any(w in words(b) for w in APPROVE_WORDS):
            return b
    for b in buttons:
        if not any(w in words(b).split() for w in DENY_WORDS):
            return b
    return buttons[0] if buttons else None


# --------------------------------------------------------------------------- the "browser"


class ScriptedBrowser:
    """Plays the person at the browser for the SDK's redirect_handler / callback_handler."""

    def __init__(self, redirect_uri: str, user: str, password: str, timeout: float) -> None:
        self.redirect_uri = redirect_uri
        self.user = user
        self.password = password
        self.timeout = timeout
        self.result: dict[str, str] | None = None
        self.pages: list[str] = []  # what was seen: "login", "consent"
        self.authorization_url: str | None = None

    def _is_callback(self, location: str) -> bool:
        loc, cb = urlparse(location), urlparse(self.redirect_uri)
        return (loc.scheme, loc.netloc, loc.path) == (cb.scheme, cb.netloc, cb.path)

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorization_url = authorization_url
        log(f"browser: authorization URL {authorization_url}")
        async with httpx.AsyncClient(follow_redirects=False, timeout=self.timeout) as client:
            resp = await client.get(authorization_url)
            for _step in range(MAX_BROWSER_STEPS):
                log(f"browser: {resp.request.method} {resp.request.url} -> {resp.status_code}"
                    f" location={resp.headers.get('location')!r} set-cookie={resp.headers.get_list('set-cookie')!r}")
                if resp.status_code in (301, 302, 303, 307, 308):
                    location = resp.headers.get("location")
                    if not location:
                        raise InteropError(f"{resp.request.method} {resp.request.url} answered {resp.status_code} without Location")
                    location = urljoin(str(resp.request.url), location)
                    if self._is_callback(location):
                        self._take_callback(location)
                        return
                    resp = await client.get(location)
                    continue
                if "login" in self.pages and _has_login_form(resp.text):
                    raise InteropError(
                        f"login as {self.user!r} rejected: {resp.request.method} {resp.request.url} answered "
                        f"HTTP {resp.status_code} with the login form again: {visible_text(resp.text)!r}"
                    )
                if resp.status_code != 200:
                    raise InteropError(
                        f"{resp.request.method} {resp.request.url} answered HTTP {resp.status_code}: "
                        f"{visible_text(resp.text) if 'html' in resp.headers.get('content-type', '') else resp.text[:300]!r}"
                    )
                resp = await self._submit_page(client, resp)
            raise InteropError(f"no redirect to {self.redirect_uri} after {MAX_BROWSER_STEPS} pages")

    async def _submit_page(self, client: Any, resp: Any) -> Any:
        parser = FormParser()
        parser.feed(resp.text)
        if not parser.forms:
            raise InteropError(f"page at {resp.request.url} has no form and no redirect: {resp.text[:500]!r}")
        login = next((f for f in parser.forms if any(t == "password" for _, t, _ in f["inputs"])), None)
        form = login or parser.forms[0]
        data: list[tuple[str, str]] = []
        if login is not None:
            self.pages.append("login")
            names = [n for n, _, _ in form["inputs"]]
            if "user" not in names or "password" not in names:
                raise InteropError(f"login form at {resp.request.url} lacks fields user/password (has {names})")
            hidden = [n for n, t, _ in form["inputs"] if t == "hidden"]
            log(f"browser: login form, hidden fields {hidden}")
            for name, typ, value in form["inputs"]:
                if name == "user":
                    value = self.user
                elif typ == "password":
                    value = self.password
                data.append((name, value))
            button = form["buttons"][0] if form["buttons"] else None
        else:
            self.pages.append("consent")
            log(f"browser: consent form, fields {[n for n, _, _ in form['inputs']]}, buttons {form['buttons']}")
            data = [(n, v) for n, _, v in form["inputs"]]
            button = _pick_approve_button(form["buttons"])
        if button and button["name"]:
            data.append((button["name"], button["value"]))
        action = urljoin(str(resp.request.url), form["action"] or str(resp.request.url))
        if form["method"] == "post":
            return await client.post(action, data=dict(data) if len(set(n for n, _ in data)) == len(data) else data)
        return await client.get(action, params=data)

    def _take_callback(self, location: str) -> None:
        q = {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}
        log(f"browser: redirect to callback, params {sorted(q)} (not followed)")
        if "error" in q:
            raise InteropError(
                f"authorization server redirected with error={q['error']!r} "
                f"error_description={q.get('error_description')!r}: {location}"
            )
        if "code" not in q:
            raise InteropError(f"redirect to callback carries no code: {location}")
        self.result = q

    async def callback_handler(self) -> Any:
        if self.result is None:
            raise InteropError("callback_handler called before the browser reached the callback")
        q = self.result
        if AuthorizationCodeResult is not None:
            return AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))
        return q["code"], q.get("state")


# --------------------------------------------------------------------------- MCP part


def field(obj: Any, snake: str, camel: str) -> Any:
    """mcp 2.x names result fields in snake_case, mcp 1.x in camelCase."""
    return getattr(obj, snake) if hasattr(obj, snake) else getattr(obj, camel, None)


def tool_payload(result: Any) -> Any:
    """The JSON a tool returned: structuredContent if present, else the first text block parsed."""
    if field(result, "is_error", "isError"):
        texts = [getattr(c, "text", "") for c in result.content]
        raise InteropError(f"tool returned isError: {' '.join(texts)[:500]}")
    sc = field(result, "structured_content", "structuredContent")
    if sc:
        # FastMCP-style servers wrap non-object results as {"result": ...}
        return sc.get("result", sc) if isinstance(sc, dict) and set(sc) == {"result"} else sc
    for c in result.content:
        text = getattr(c, "text", None)
        if text is not None:
            try:
                return json.loads(text)
            except ValueError:
                return text
    return None


def _flatten(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for e in exc.exceptions:
            out.extend(_flatten(e))
        return out
    return [exc]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    storage = MemoryTokenStorage()
    browser = ScriptedBrowser(args.redirect_uri, args.user, args.password, args.timeout)
    metadata = dict(
        client_name="mcp-swarm interop (python-sdk)",
        redirect_uris=[args.redirect_uri],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
    )
    oauth = OAuthClientProvider(
        server_url=args.mcp_url,
        client_metadata=OAuthClientMetadata(**metadata),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )

    async def on_request(request: Any) -> None:
        log(f"sdk: -> {request.method} {request.url}")

    async def on_response(response: Any) -> None:
        www = response.headers.get("www-authenticate")
        log(f"sdk: <- {response.status_code} {response.request.method} {response.request.url}"
            + (f" www-authenticate={www!r}" if www else ""))

    title = f"interop-{uuid.uuid4().hex[:8]}"
    content = "written by the official Python MCP SDK"
    category = "interop"
    summary: dict[str, Any] = {"ok": False, "mcp_sdk": pkg_version("mcp"), "mcp_url": args.mcp_url}

    hooks = {"request": [on_request], "response": [on_response]}
    timeout = httpx.Timeout(args.timeout, read=max(args.timeout, 60.0))
    async with httpx.AsyncClient(auth=oauth, timeout=timeout, event_hooks=hooks, follow_redirects=False) as http:
        if streamable_http_client is not None:
            transport = streamable_http_client(args.mcp_url, http_client=http)
        else:
            transport = streamablehttp_client(args.mcp_url, auth=oauth, timeout=args.timeout)
        async with transport as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                summary["protocol_version"] = str(field(init, "protocol_version", "protocolVersion"))
                info = field(init, "server_info", "serverInfo")
                summary["server"] = {"name": info.name, "version": info.version}
                tools = await session.list_tools()
                names = sorted(t.name for t in tools.tools)
                summary["tools"] = len(names)
                missing = [n for n in ("nc_notes_create_note", "nc_notes_get_note") if n not in names]
                if missing:
                    raise InteropError(f"tools/list lacks {missing}; it has {names}")

                created = tool_payload(await session.call_tool(
                    "nc_notes_create_note", {"title": title, "content": content, "category": category}))
                if not isinstance(created, dict) or "id" not in created:
                    raise InteropError(f"nc_notes_create_note returned no note id: {created!r}")
                note_id = created["id"]
                if args.pause:
                    log(f"pausing {args.pause}s (lets a short-lived access token expire: exercises refresh)")
                    await asyncio.sleep(args.pause)
                got = tool_payload(await session.call_tool("nc_notes_get_note", {"note_id": note_id}))
                if not isinstance(got, dict):
                    raise InteropError(f"nc_notes_get_note returned {got!r}")
                for k, want in (("title", title), ("content", content), ("category", category)):
                    if got.get(k) != want:
                        raise InteropError(f"nc_notes_get_note: {k}={got.get(k)!r}, wanted {want!r} (note {got!r})")

    tokens = storage.tokens
    summary.update(
        ok=True,
        client_id=storage.client_info.client_id if storage.client_info else None,
        token_endpoint_auth_method=storage.client_info.token_endpoint_auth_method if storage.client_info else None,
        scope=tokens.scope if tokens else None,
        refresh_token=bool(tokens and tokens.refresh_token),
        browser_pages=browser.pages,
        iss_in_redirect=bool(browser.result and "iss" in browser.result),
        note={"id": note_id, "etag": got.get("etag"), "title": title},
    )
    return summary


def main() -> int:
    global VERBOSE
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mcp_url", help="MCP endpoint, e.g. http://127.0.0.1:8080/mcp")
    p.add_argument("user")
    p.add_argument("password")
    p.add_argument("--redirect-uri", default="http://localhost:3030/callback",
                   help="registered redirect URI; never listened on (default %(default)s)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds for each HTTP request and the whole run x4")
    p.add_argument("--pause", type=float, default=0.0,
                   help="seconds to wait between creating and reading the note (with a short --token-ttl "
                        "on the server this exercises the SDK's refresh)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every HTTP exchange to stderr")
    args = p.parse_args()
    VERBOSE = args.verbose
    # The SDK logs its own failures (with tracebacks) before raising; we report them once, below.
    logging.basicConfig(level=logging.DEBUG if VERBOSE else logging.WARNING,
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "anyio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not VERBOSE:
        logging.getLogger("mcp.client.auth").setLevel(logging.CRITICAL)

    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(run(args), timeout=args.timeout * 4 + args.pause)

    try:
        summary = asyncio.run(bounded())
    except BaseException as exc:  # noqa: BLE001 - report every failure as one clear line
        if isinstance(exc, KeyboardInterrupt):
            raise
        leaves = _flatten(exc)
        msgs = []
        for e in leaves:
            if isinstance(e, asyncio.TimeoutError):
                msgs.append(f"timed out after {args.timeout * 4 + args.pause:.0f}s")
            elif type(e).__name__ in ("ConnectError", "ConnectTimeout"):
                msgs.append(f"cannot connect to {args.mcp_url}: {e}")
            else:
                mod = "" if type(e).__module__ in ("__main__", "builtins") else type(e).__module__ + "."
                msgs.append(f"{mod}{type(e).__name__}: {e}")
        print(json.dumps({"ok": False, "mcp_sdk": pkg_version("mcp"), "error": "; ".join(msgs)}))
        print(f"FAILED: {'; '.join(msgs)}", file=sys.stderr)
        if VERBOSE:
            import traceback

            for e in leaves:
                traceback.print_exception(e, file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
