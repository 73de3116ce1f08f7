"""The loopback OAuth 2.0 provider and AUTH XOAUTH2 in the SMTP fixture behave like the real providers."""

import base64
import json
import smtplib
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage

import pytest

from smtp_routing.testing.oauth import OAuthProvider
from smtp_routing.testing.smtpd import SmtpServer

TIMEOUT = 5
CLIENT = {"client_id": "client-id", "client_secret": "client-secret"}
REDIRECT = "http://127.0.0.1:8069/microsoft_outlook/confirm"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def post_token(provider, **form):
    data = urllib.parse.urlencode(form).encode()
    try:
        with urllib.request.urlopen(provider.token_url, data=data, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def authorize(provider, **query):
    opener = urllib.request.build_opener(_NoRedirect)
    url = provider.authorize_url + "?" + urllib.parse.urlencode(query)
    try:
        with opener.open(url, timeout=TIMEOUT) as response:
            return response.status, response.headers.get("Location"), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location"), error.read().decode()


@pytest.fixture
def provider():
    with OAuthProvider() as running:
        yield running


def consent(provider, state="s1"):
    status, location, _body = authorize(
        provider, client_id="client-id", redirect_uri=REDIRECT, response_type="code", scope="SMTP.Send", state=state
    )
    assert status == 302
    assert location.startswith(REDIRECT + "?")
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def test_authorize_redirects_back_with_a_code_and_the_state(provider):
    query = consent(provider, state='{"model": "ir.mail_server", "id": 3}')
    assert query["state"] == '{"model": "ir.mail_server", "id": 3}'
    assert query["code"].startswith("code-")
    assert provider.requests == [("authorize", "ok")]


def test_authorization_code_grant_gives_tokens_once(provider):
    code = consent(provider)["code"]
    status, body = post_token(provider, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, **CLIENT)
    assert status == 200
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["refresh_token"].startswith("refresh-") and body["access_token"].startswith("access-")
    assert body["scope"] == "SMTP.Send"
    assert provider.check_access_token("alice@example.com", body["access_token"])
    assert not provider.check_access_token("bob@example.com", body["access_token"])
    # a code is single-use
    status, body = post_token(provider, grant_type="authorization_code", code=code, redirect_uri=REDIRECT, **CLIENT)
    assert (status, body["error"]) == (400, "invalid_grant")


def test_authorization_code_needs_the_same_redirect_uri(provider):
    code = consent(provider)["code"]
    status, body = post_token(
        provider, grant_type="authorization_code", code=code, redirect_uri="http://127.0.0.1:1/other", **CLIENT
    )
    assert (status, body["error"]) == (400, "invalid_grant")


def test_refresh_rotates_and_a_revoked_refresh_token_gets_invalid_grant(provider):
    refresh, _access = provider.issue("alice@example.com")
    status, body = post_token(provider, grant_type="refresh_token", refresh_token=refresh, **CLIENT)
    assert status == 200 and body["refresh_token"] != refresh
    # the old one was retired by the rotation
    status, old = post_token(provider, grant_type="refresh_token", refresh_token=refresh, **CLIENT)
    assert (status, old["error"]) == (400, "invalid_grant")
    provider.revoke_user("alice@example.com")
    status, revoked = post_token(provider, grant_type="refresh_token", refresh_token=body["refresh_token"], **CLIENT)
    assert (status, revoked["error"]) == (400, "invalid_grant")
    assert "sign in again" in revoked["error_description"]
    assert not provider.check_access_token("alice@example.com", body["access_token"])


def test_refresh_without_rotation_keeps_the_refresh_token():
    with OAuthProvider(rotate_refresh_tokens=False) as provider:
        refresh, _access = provider.issue("alice@example.com")
        for _ in range(2):
            status, body = post_token(provider, grant_type="refresh_token", refresh_token=refresh, **CLIENT)
            assert status == 200 and "refresh_token" not in body


def test_client_credentials_gives_an_application_token(provider):
    status, body = post_token(
        provider, grant_type="client_credentials", scope="https://outlook.office365.com/.default", **CLIENT
    )
    assert status == 200 and "refresh_token" not in body
    assert provider.check_access_token("anyone@example.com", body["access_token"])


def test_client_authentication_by_basic_header(provider):
    refresh, _access = provider.issue("alice@example.com")
    data = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": refresh}).encode()
    request = urllib.request.Request(provider.token_url, data=data)
    request.add_header("Authorization", "Basic " + base64.b64encode(b"client-id:client-secret").decode())
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        assert response.status == 200


@pytest.mark.parametrize("secret", ["wrong", ""])
def test_wrong_client_secret_gets_invalid_client(provider, secret):
    status, body = post_token(provider, grant_type="client_credentials", client_id="client-id", client_secret=secret)
    assert (status, body["error"]) == (401, "invalid_client")


def test_an_expired_client_secret_gets_invalid_client_with_the_reason(provider):
    refresh, _access = provider.issue("alice@example.com")
    provider.expire_client_secret("client-id")
    status, body = post_token(provider, grant_type="refresh_token", refresh_token=refresh, **CLIENT)
    assert (status, body["error"]) == (401, "invalid_client")
    assert "expired" in body["error_description"]


def test_unknown_grant_and_faults(provider):
    status, body = post_token(provider, grant_type="password", **CLIENT)
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    refresh, _access = provider.issue("alice@example.com")
    provider.add_fault("refresh_token", times=1)
    status, body = post_token(provider, grant_type="refresh_token", refresh_token=refresh, **CLIENT)
    assert (status, body["error"]) == (503, "temporarily_unavailable")
    status, _body = post_token(provider, grant_type="refresh_token", refresh_token=refresh, **CLIENT)
    assert status == 200  # the fault was for one request only
    with pytest.raises(ValueError):
        provider.add_fault("implicit")


def test_authorize_refuses_unknown_clients_and_relative_redirects_and_honours_denial(provider):
    status, _location, text = authorize(provider, client_id="nobody", redirect_uri=REDIRECT, response_type="code")
    assert status == 400 and "nobody" in text
    status, _location, _text = authorize(
        provider, client_id="client-id", redirect_uri="/relative", response_type="code"
    )
    assert status == 400
    provider.deny_consent = True
    status, location, _text = authorize(
        provider, client_id="client-id", redirect_uri=REDIRECT, response_type="code", state="x"
    )
    assert status == 302
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    assert query["error"] == "access_denied" and query["state"] == "x" and "code" not in query


def test_unknown_paths_and_stop(provider):
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(provider.base_url + "nothing", timeout=TIMEOUT)
    assert caught.value.code == 404
    port = provider.port
    provider.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/token", data=b"", timeout=1)


# -- AUTH XOAUTH2 in the SMTP fixture ---------------------------------------------------------------------------


def _xoauth2(user, token):
    return base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode()).decode()


def _message():
    msg = EmailMessage()
    msg["From"] = "alice@example.com"
    msg["To"] = "bob@example.com"
    msg["Subject"] = "over OAuth"
    msg.set_content("body")
    return msg


@pytest.fixture
def oauth_smtp(provider):
    with SmtpServer(tls="starttls", xoauth2=provider.check_access_token, auth_required=True) as server:
        yield server


def test_xoauth2_accepts_the_token_the_provider_issued_inside_tls(provider, oauth_smtp):
    _refresh, access = provider.issue("alice@example.com")
    with smtplib.SMTP(oauth_smtp.host, oauth_smtp.port, timeout=TIMEOUT) as client:
        client.ehlo()
        assert "auth" not in client.esmtp_features  # not offered before STARTTLS
        client.starttls(context=oauth_smtp.cert.client_context())
        client.ehlo()
        assert "XOAUTH2" in client.esmtp_features["auth"].split()
        code, _reply = client.docmd("AUTH", "XOAUTH2 " + _xoauth2("alice@example.com", access))
        assert code == 235
        client.send_message(_message())
    assert oauth_smtp.wait_for(1)
    assert oauth_smtp.messages[0].auth_user == "alice@example.com" and oauth_smtp.messages[0].tls
    assert oauth_smtp.auth_attempts == [("XOAUTH2", "alice@example.com", True)]


def test_xoauth2_before_starttls_is_refused(provider, oauth_smtp):
    _refresh, access = provider.issue("alice@example.com")
    with smtplib.SMTP(oauth_smtp.host, oauth_smtp.port, timeout=TIMEOUT) as client:
        client.ehlo()
        code, reply = client.docmd("AUTH", "XOAUTH2 " + _xoauth2("alice@example.com", access))
    assert code == 538 and b"Encryption required" in reply
    assert oauth_smtp.auth_attempts == []


@pytest.mark.parametrize("case", ["revoked", "expired", "other user", "unknown"])
def test_xoauth2_refuses_tokens_the_provider_does_not_vouch_for(provider, oauth_smtp, case):
    _refresh, access = provider.issue("alice@example.com")
    user = "alice@example.com"
    if case == "revoked":
        provider.revoke_user(user)
    elif case == "expired":
        provider.expire_access_tokens()
    elif case == "other user":
        user = "mallory@example.com"
    else:
        access = "access-made-up"
    with smtplib.SMTP(oauth_smtp.host, oauth_smtp.port, timeout=TIMEOUT) as client:
        client.starttls(context=oauth_smtp.cert.client_context())
        client.ehlo()
        code, challenge = client.docmd("AUTH", "XOAUTH2 " + _xoauth2(user, access))
        assert code == 334  # Gmail's error challenge, JSON in base64
        assert json.loads(base64.b64decode(challenge))["status"] == "401"
        code, reply = client.docmd("")
        assert code == 535 and b"5.7.8" in reply
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            client.send_message(_message())
        assert caught.value.smtp_code == 530  # still not authenticated
    assert oauth_smtp.messages == []
    assert oauth_smtp.auth_attempts == [("XOAUTH2", user, False)]


def test_xoauth2_is_not_offered_without_a_validator():
    with SmtpServer(credentials={"alice": "s3cret"}, tls="starttls") as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.starttls(context=server.cert.client_context())
            client.ehlo()
            assert "XOAUTH2" not in client.esmtp_features["auth"].split()
            code, _reply = client.docmd("AUTH", "XOAUTH2 " + _xoauth2("alice", "x"))
            assert code == 504


def test_auth_require_tls_needs_starttls():
    with pytest.raises(ValueError):
        SmtpServer(tls="implicit", auth_require_tls=True)
