#!/usr/bin/env python3
"""`make screenshots`: the README's screenshots, taken from the running demo in headless Chromium.

Starts `make demo` (PostgreSQL, loopback SMTP sinks and DNS, Odoo serving), drives Debian's
Chromium through its DevTools protocol (websocket-client, from .venv-odoo), logs in as the
admin and as the user ana, and writes PNG files to docs/screenshots/. Needs ODOO_PATH and
Chromium (apt-get install chromium).
"""

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import devenv  # noqa: E402

OUT = devenv.ROOT / "docs" / "screenshots"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-allow-origins=*",
    "--hide-scrollbars",
    "--window-size=1366,860",
    "--force-device-scale-factor=1",
]


class Browser:
    """Just enough of the DevTools protocol: navigate, run JavaScript, wait, screenshot."""

    def __init__(self, binary):
        import requests
        import websocket

        self.profile = tempfile.mkdtemp(prefix="smtp-routing-chrome-")
        port = devenv.free_port()
        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", f"--remote-debugging-port={port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                pages = requests.get(f"http://127.0.0.1:{port}/json", timeout=2).json()
                page = next(target for target in pages if target["type"] == "page")
                break
            except (requests.RequestException, StopIteration, ValueError):
                if time.monotonic() > deadline:
                    raise RuntimeError("Chromium did not open its DevTools port") from None
                time.sleep(0.3)
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def js(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript failed: {expression[:80]}... {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait(self, expression, what, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.js(expression):
                    return
            except RuntimeError:
                pass
            time.sleep(0.25)
        self.shot("timeout.png")  # what the page showed, for whoever reads the error (not committed)
        raise RuntimeError(f"timed out waiting for {what} (page: {self.js('location.href')}; see timeout.png)")

    def goto(self, url, ready):
        self.call("Page.navigate", url=url)
        time.sleep(0.5)
        self.wait(f"!!document.querySelector({json.dumps(ready)})", ready)
        time.sleep(1.0)  # let the web client finish rendering

    def click(self, selector, text=None):
        """Click the first element matching ``selector`` (whose text contains ``text``)."""
        found = self.js(
            f"""(() => {{
                const text = {json.dumps(text)};
                const el = [...document.querySelectorAll({json.dumps(selector)})]
                    .find(e => !text || e.textContent.includes(text));
                if (!el) return false;
                el.scrollIntoView({{block: "center"}});
                el.click();
                return true;
            }})()"""
        )
        if not found:
            raise RuntimeError(f"nothing to click: {selector} {text or ''}")
        time.sleep(1.0)

    def shot(self, name):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        (OUT / name).write_bytes(base64.b64decode(data))
        devenv.log(f"docs/screenshots/{name}")

    def login(self, base, login, password):
        self.goto(f"{base}/web/login", "input[name=login]")
        self.js(
            f"""document.querySelector('input[name=login]').value = {json.dumps(login)};
                document.querySelector('input[name=password]').value = {json.dumps(password)};
                document.querySelector('form.oe_login_form').submit();"""
        )
        self.wait("!!document.querySelector('.o_main_navbar')", "the web client after login")

    def logout(self, base):
        self.call("Page.navigate", url=f"{base}/web/session/logout")
        time.sleep(1.5)

    def close(self):
        self.process.terminate()
        self.process.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)


def take(browser, base):
    action = f"{base}/odoo/action-smtp_routing"
    browser.login(base, "admin", "admin")

    browser.goto(f"{action}.ir_mail_server_dashboard_action", ".o_kanban_record")
    browser.shot("dashboard.png")

    browser.click(".o_kanban_record", "Practice mailbox")
    browser.wait("!!document.querySelector('.o_form_view .o_notebook')", "the server form")
    browser.shot("server-form.png")
    for tab, name in (
        ("Routing", "server-routing.png"),
        ("Limits", "server-limits.png"),
        ("History", "server-history.png"),
        ("Deliverability", "server-deliverability.png"),
    ):
        browser.click(".o_notebook a.nav-link", tab)
        browser.shot(name)

    browser.click(".o_form_statusbar button[name=action_smtp_routing_test_email]")
    browser.wait("!!document.querySelector('.modal div[name=email_to] input')", "the test email dialog")
    browser.click(".modal footer button[name=action_send]")
    browser.wait("!!document.querySelector('.modal .alert-success:not(.d-none)')", "the delivered test email")
    browser.shot("test-email.png")
    browser.click(".modal footer button", "Close")

    browser.goto(f"{action}.smtp_routing_delivery_log_action", ".o_list_view .o_data_row")
    browser.shot("delivery-history.png")
    browser.goto(f"{action}.smtp_routing_route_action", ".o_list_view .o_data_row")
    browser.shot("routes.png")
    browser.goto(f"{action}.smtp_routing_send_as_action", ".o_list_view .o_data_row")
    browser.shot("send-as.png")

    browser.goto(f"{action}.smtp_routing_route_explain_action", ".modal div[name=line_ids] .o_data_row")
    browser.shot("which-server.png")

    # Microsoft 365 over OAuth: Connect your account goes through the (loopback) provider and back
    browser.goto(f"{action}.ir_mail_server_dashboard_action", ".o_kanban_record")
    browser.click(".o_kanban_record", "Microsoft 365 mailbox")
    browser.wait("!!document.querySelector('.o_form_view button[name=open_microsoft_outlook_uri]')", "the OAuth server")
    # Odoo opens the consent page in a new window, which headless Chromium blocks: ask Odoo for the same
    # URL (the button's own method, over JSON-RPC) and open it in this tab; the provider sends us back.
    server_id = int(browser.js("location.pathname.split('/').pop()"))
    consent = browser.js(
        "fetch('/web/dataset/call_kw/ir.mail_server/open_microsoft_outlook_uri', {method: 'POST', "
        "headers: {'Content-Type': 'application/json'}, body: JSON.stringify({jsonrpc: '2.0', method: 'call', "
        f"params: {{model: 'ir.mail_server', method: 'open_microsoft_outlook_uri', args: [[{server_id}]], "
        "kwargs: {}}})}).then(response => response.json()).then(answer => answer.result.url)"
    )
    browser.call("Page.navigate", url=consent)
    time.sleep(1.0)
    browser.click(".o_notebook a.nav-link", "Connection")
    browser.wait(
        "[...document.querySelectorAll('.o_form_view .badge.text-bg-success')]"
        ".some(badge => badge.textContent.includes('Token'))",
        "the server connected through the provider's consent flow",
        timeout=60,
    )
    time.sleep(1.0)
    browser.shot("server-oauth.png")

    browser.goto(f"{base}/odoo/settings", ".o_setting_container")
    browser.js(
        """[...document.querySelectorAll('.o_setting_container .settings h2')]
            .find(h => h.textContent.includes('Outgoing Mail Routing')).scrollIntoView({block: 'start'})"""
    )
    time.sleep(0.8)
    browser.shot("settings.png")

    browser.logout(base)
    browser.login(base, "ana", "ana")
    browser.click(".o_user_menu button")
    browser.click("[data-menu=settings]")
    browser.wait("!!document.querySelector('.modal div[name=smtp_routing_server_id]')", "the preferences dialog")
    browser.js("document.querySelector('.modal div[name=smtp_routing_server_id]').scrollIntoView({block: 'center'})")
    time.sleep(0.5)
    browser.shot("preferences-es.png")
    browser.js(
        "document.querySelector('.modal button[name=action_smtp_routing_connect_outlook]')"
        ".scrollIntoView({block: 'center'})"
    )
    time.sleep(0.5)
    browser.shot("preferences-connect-es.png")


def main():
    odoo_path, reason = devenv.find_odoo()
    if odoo_path is None:
        sys.exit(f"make screenshots: {reason}")
    sys.path.insert(0, str(devenv.ROOT))
    from smtp_routing.testing.browser import find_chromium

    chromium = find_chromium()
    if chromium is None:
        sys.exit("make screenshots: Chromium is not installed (apt-get install chromium)")
    if "--in-venv" not in sys.argv:
        python = devenv.ensure_odoo_venv(odoo_path)
        os.execv(str(python), [str(python), __file__, "--in-venv", *sys.argv[1:]])
    OUT.mkdir(parents=True, exist_ok=True)
    port = devenv.free_port()
    demo = subprocess.Popen(
        [sys.executable, str(devenv.ROOT / "scripts" / "demo.py"), "--in-venv", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    browser = None
    try:
        for line in demo.stdout:
            sys.stdout.write(line)
            if "Odoo is serving" in line:
                break
        else:
            sys.exit("make screenshots: the demo stopped before serving")
        base = f"http://127.0.0.1:{port}"
        import requests

        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/web/login", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                sys.exit("make screenshots: Odoo did not answer")
            time.sleep(0.5)
        browser = Browser(chromium)
        take(browser, base)
    finally:
        if browser:
            browser.close()
        os.killpg(demo.pid, signal.SIGINT)  # the demo cleans up its cluster on Ctrl-C
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
