"""A real OAuth 2.0 provider on 127.0.0.1 for tests (token and authorize endpoints).

Both test suites use it, as Microsoft's and Google's stand-in: Odoo's own modules
(``microsoft_outlook``, ``google_gmail``) talk to it over real HTTP, and the SMTP
fixture (``smtpd.SmtpServer(xoauth2=provider.check_access_token)``) accepts
exactly the access tokens it issued::

    with OAuthProvider(clients={"client-id": "client-secret"}) as provider:
        provider.consent_user = "alice@example.com"
        ...  # token endpoint: provider.token_url, authorize: provider.authorize_url
        provider.revoke_user("alice@example.com")  # the next refresh gets invalid_grant

Token endpoint (``POST /token``, form-encoded, RFC 6749): the grants
``authorization_code`` (single-use codes from ``/authorize``, bound to the client
and the redirect URI), ``refresh_token`` (``invalid_grant`` once revoked; refresh
tokens rotate like Microsoft's unless ``rotate_refresh_tokens=False``) and
``client_credentials`` (an application token, for any mailbox). Errors are the
RFC's JSON (``error``, ``error_description``); a wrong client secret or an expired
one (``expire_client_secret``) gets ``invalid_client``. ``add_fault`` makes the
next requests of a grant fail with a chosen status and error (e.g. 503
``temporarily_unavailable``).

Authorize endpoint (``GET /authorize``): the user has consented already; it
redirects to ``redirect_uri`` with ``code`` and ``state`` (or with
``error=access_denied`` while ``deny_consent`` is set). Only ``client_id`` values
it knows and absolute http(s) redirect URIs are accepted.

Every loop is bounded: the server thread polls every 0.1 s and stops with
``stop()``; a client that says nothing is dropped after ``REQUEST_TIMEOUT``
seconds. Framework-free: never imports odoo.
"""

import base64
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK = "127.0.0.1"
REQUEST_TIMEOUT = 5.0
MAX_BODY = 64 * 1024
GRANTS = ("authorization_code", "refresh_token", "client_credentials")


@dataclass
class Token:
    value: str
    kind: str  # "access", "refresh" or "code"
    client_id: str
    user: str | None  # None: an application token (client_credentials)
    scope: str = ""
    expires_at: float | None = None
    redirect_uri: str | None = None
    revoked: bool = False

    def valid(self, now=None):
        now = time.time() if now is None else now
        return not self.revoked and (self.expires_at is None or now < self.expires_at)


@dataclass
class _Fault:
    grant: str
    status: int
    error: str
    description: str
    times: int | None


class OAuthError(Exception):
    def __init__(self, status, error, description=""):
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description


class OAuthProvider:
    """A loopback OAuth 2.0 authorization server.

    :param clients: ``{client_id: client_secret}`` of the registered applications.
    :param access_lifetime: seconds an access token lives (``expires_in``).
    :param rotate_refresh_tokens: a refresh returns a new refresh token and retires the old one.
    """

    def __init__(self, clients=None, access_lifetime=3600, rotate_refresh_tokens=True):
        self.clients = dict(clients or {"client-id": "client-secret"})
        self.access_lifetime = access_lifetime
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.consent_user = "alice@example.com"
        self.consent_scope = None  # None: the scope the client asked for
        self.deny_consent = False
        self.expired_secrets = set()
        self.requests = []  # (grant type or "authorize", outcome: "ok" or the error code)
        self.host = LOOPBACK
        self.port = None
        self._tokens = {}
        self._faults = []
        self._lock = threading.Lock()
        self._server = None
        self._thread = None

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        if self._server is not None:
            return self
        provider = self

        class Handler(_Handler):
            pass

        Handler.provider = provider
        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="oauth-provider", daemon=True
        )
        self._thread.start()
        return self

    def stop(self):
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=REQUEST_TIMEOUT)
        self._server = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self):
        """The endpoint prefix, as Odoo's ``microsoft_outlook.endpoint`` takes it (ends with a slash)."""
        return f"http://{self.host}:{self.port}/"

    @property
    def token_url(self):
        return self.base_url + "token"

    @property
    def authorize_url(self):
        return self.base_url + "authorize"

    # -- what tests change -------------------------------------------------
    def revoke_user(self, user):
        """The user withdrew consent (or an admin revoked the sessions): their tokens stop working."""
        with self._lock:
            for token in self._tokens.values():
                if token.user == user:
                    token.revoked = True

    def revoke(self, value):
        with self._lock:
            if value in self._tokens:
                self._tokens[value].revoked = True

    def expire_access_tokens(self):
        """Every access token issued so far is past its lifetime."""
        with self._lock:
            for token in self._tokens.values():
                if token.kind == "access":
                    token.expires_at = time.time() - 1

    def expire_client_secret(self, client_id):
        """The application's client secret expired: every grant gets ``invalid_client``."""
        with self._lock:
            self.expired_secrets.add(client_id)

    def add_fault(self, grant, status=503, error="temporarily_unavailable", description="", times=None):
        """The next requests of ``grant`` (``times``: how many; None: all) fail with this status and error."""
        if grant not in GRANTS:
            raise ValueError(f"unknown grant {grant!r}; use one of {GRANTS}")
        with self._lock:
            self._faults.append(_Fault(grant, status, error, description or error, times))

    def clear_faults(self):
        with self._lock:
            self._faults.clear()

    def issue(self, user, client_id=None, scope=""):
        """A refresh token and an access token for ``user``, as if they had consented: ``(refresh, access)``."""
        client_id = client_id or next(iter(self.clients))
        with self._lock:
            refresh = self._new("refresh", client_id, user, scope)
            access = self._new("access", client_id, user, scope, lifetime=self.access_lifetime)
        return refresh.value, access.value

    # -- what the SMTP fixture asks ----------------------------------------
    def check_access_token(self, user, token):
        """True when ``token`` is a live access token of ``user`` (application tokens may act for anyone)."""
        with self._lock:
            found = self._tokens.get(token)
            return bool(
                found and found.kind == "access" and found.valid() and (found.user is None or found.user == user)
            )

    def tokens(self, kind=None, user=None):
        with self._lock:
            return [
                t
                for t in self._tokens.values()
                if (kind is None or t.kind == kind) and (user is None or t.user == user)
            ]

    # -- the protocol ------------------------------------------------------
    def _new(self, kind, client_id, user, scope, lifetime=None, redirect_uri=None):
        value = f"{kind}-{secrets.token_urlsafe(24)}"
        token = Token(value, kind, client_id, user, scope, time.time() + lifetime if lifetime else None, redirect_uri)
        self._tokens[value] = token
        return token

    def _client(self, form, authorization):
        """The authenticated client id (form fields, or HTTP Basic as RFC 6749 prefers)."""
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode("utf-8")
                client_id, secret = (urllib.parse.unquote(part) for part in decoded.split(":", 1))
            except (ValueError, UnicodeDecodeError) as error:
                raise OAuthError(401, "invalid_client", "malformed Basic authorization") from error
        if client_id not in self.clients or not secrets.compare_digest(self.clients[client_id], secret or ""):
            raise OAuthError(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        if client_id in self.expired_secrets:
            raise OAuthError(
                401, "invalid_client", "AADSTS7000222: The provided client secret keys for app are expired."
            )
        return client_id

    def _fault(self, grant):
        for fault in self._faults:
            if fault.grant == grant:
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return OAuthError(fault.status, fault.error, fault.description)
        return None

    def token_request(self, form, authorization=None):
        """Answer one token request: ``(status, JSON body)``."""
        grant = form.get("grant_type", "")
        with self._lock:
            try:
                body = self._grant(grant, form, authorization)
            except OAuthError as error:
                self.requests.append((grant, error.error))
                return error.status, {"error": error.error, "error_description": error.description}
            self.requests.append((grant, "ok"))
            return 200, body

    def _grant(self, grant, form, authorization):
        if grant not in GRANTS:
            raise OAuthError(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported")
        fault = self._fault(grant)
        if fault:
            raise fault
        client_id = self._client(form, authorization)
        if grant == "client_credentials":
            access = self._new("access", client_id, None, form.get("scope", ""), lifetime=self.access_lifetime)
            return {"token_type": "Bearer", "access_token": access.value, "expires_in": self.access_lifetime}
        if grant == "authorization_code":
            code = self._tokens.get(form.get("code", ""))
            if not code or code.kind != "code" or not code.valid() or code.client_id != client_id:
                raise OAuthError(400, "invalid_grant", "AADSTS70000: The provided authorization code is invalid.")
            if code.redirect_uri != form.get("redirect_uri"):
                raise OAuthError(400, "invalid_grant", "The redirect URI does not match the authorization request.")
            code.revoked = True  # single use
            user, scope = code.user, code.scope
        else:
            old = self._tokens.get(form.get("refresh_token", ""))
            if not old or old.kind != "refresh" or not old.valid() or old.client_id != client_id:
                raise OAuthError(
                    400,
                    "invalid_grant",
                    "AADSTS700082: The refresh token has expired or was revoked; the user must sign in again.",
                )
            user, scope = old.user, old.scope
            if not self.rotate_refresh_tokens:
                access = self._new("access", client_id, user, scope, lifetime=self.access_lifetime)
                return self._body(access, None, scope)
            old.revoked = True
        refresh = self._new("refresh", client_id, user, scope)
        access = self._new("access", client_id, user, scope, lifetime=self.access_lifetime)
        return self._body(access, refresh, scope)

    def _body(self, access, refresh, scope):
        body = {"token_type": "Bearer", "access_token": access.value, "expires_in": self.access_lifetime}
        if refresh is not None:
            body["refresh_token"] = refresh.value
        if scope:
            body["scope"] = scope
        return body

    def authorize(self, query):
        """Answer one authorization request: ``(status, location or error text)``."""
        client_id = query.get("client_id", "")
        redirect_uri = query.get("redirect_uri", "")
        parsed = urllib.parse.urlsplit(redirect_uri)
        with self._lock:
            if client_id not in self.clients:
                self.requests.append(("authorize", "unauthorized_client"))
                return 400, f"unknown client_id {client_id!r}"
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                self.requests.append(("authorize", "invalid_request"))
                return 400, f"redirect_uri must be an absolute http(s) URL, not {redirect_uri!r}"
            if query.get("response_type") != "code":
                params = {"error": "unsupported_response_type", "error_description": "only response_type=code"}
            elif self.deny_consent:
                params = {"error": "access_denied", "error_description": "The user declined to consent."}
            else:
                scope = self.consent_scope if self.consent_scope is not None else query.get("scope", "")
                code = self._new("code", client_id, self.consent_user, scope, lifetime=600, redirect_uri=redirect_uri)
                params = {"code": code.value}
            self.requests.append(("authorize", params.get("error", "ok")))
        if "state" in query:
            params["state"] = query["state"]
        separator = "&" if parsed.query else "?"
        return 302, redirect_uri + separator + urllib.parse.urlencode(params)


class _Handler(BaseHTTPRequestHandler):
    provider = None
    timeout = REQUEST_TIMEOUT  # a client that says nothing is dropped
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet fixture
        pass

    def _send(self, status, body, content_type="application/json", headers=()):
        data = body if isinstance(body, bytes) else body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802 - http.server's naming
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        if path.rsplit("/", 1)[-1] != "token":
            return self._send(404, json.dumps({"error": "not_found"}))
        if length > MAX_BODY:
            return self._send(413, json.dumps({"error": "invalid_request", "error_description": "body too large"}))
        raw = self.rfile.read(length).decode("utf-8", "replace")
        form = {key: values[0] for key, values in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}
        status, body = self.provider.token_request(form, self.headers.get("Authorization"))
        return self._send(status, json.dumps(body))

    def do_GET(self):  # noqa: N802 - http.server's naming
        parts = urllib.parse.urlsplit(self.path)
        if parts.path.rstrip("/").rsplit("/", 1)[-1] not in ("authorize", "auth"):
            return self._send(404, "not found", "text/plain")
        query = {key: values[0] for key, values in urllib.parse.parse_qs(parts.query).items()}
        status, target = self.provider.authorize(query)
        if status == 302:
            return self._send(302, b"", "text/plain", headers=[("Location", target)])
        return self._send(status, target, "text/plain")
