"""Real install/uninstall round trip of SMTP passwords and OAuth tokens (run by run_tests.py with Odoo).

Stock Odoo stores a plaintext password, and Gmail/Outlook tokens in clear;
installing smtp_routing (its bridge modules follow by themselves) must encrypt
them (nothing left in clear), and uninstalling must put them back so mail keeps
working. Each step runs in its own Odoo process, as an admin would do it.
"""

import subprocess

PLAINTEXT = "Lifecycle-Plain-Secret-42"
TOKENS = {
    "microsoft_outlook_refresh_token": "Lifecycle-Outlook-Refresh-77",
    "microsoft_outlook_access_token": "Lifecycle-Outlook-Access-77",
    "google_gmail_refresh_token": "Lifecycle-Gmail-Refresh-55",
    "google_gmail_access_token": "Lifecycle-Gmail-Access-55",
}
DB = "smtp_routing_lifecycle"

STOCK_SERVER = f"""
env["ir.mail_server"].create({{"name": "Stock server", "smtp_host": "smtp.example.com", "smtp_port": 587,
                              "smtp_user": "office", "smtp_pass": "{PLAINTEXT}"}})
oauth = {{"smtp_port": 587, "smtp_encryption": "starttls", "smtp_user": "o@example.com"}}
env["ir.mail_server"].create({{**oauth, "name": "Stock Outlook", "smtp_host": "smtp.outlook.com",
    "smtp_authentication": "outlook", "microsoft_outlook_refresh_token": "{TOKENS["microsoft_outlook_refresh_token"]}",
    "microsoft_outlook_access_token": "{TOKENS["microsoft_outlook_access_token"]}"}})
env["ir.mail_server"].create({{**oauth, "name": "Stock Gmail", "smtp_host": "smtp.gmail.com",
    "smtp_authentication": "gmail", "google_gmail_refresh_token": "{TOKENS["google_gmail_refresh_token"]}",
    "google_gmail_access_token": "{TOKENS["google_gmail_access_token"]}"}})
env.cr.commit()
"""

AFTER_INSTALL = f"""
env.cr.execute("SELECT smtp_pass, smtp_routing_pass_encrypted FROM ir_mail_server WHERE name = 'Stock server'")
column, stored = env.cr.fetchone()
print("CHECK plaintext column emptied on install:", column is None)
encrypted = bool(stored) and stored.startswith("srenc1:") and "{PLAINTEXT}" not in stored
print("CHECK ciphertext stored on install:", encrypted)
server = env["ir.mail_server"].search([("name", "=", "Stock server")])
print("CHECK password not readable through the ORM after install:", not server.smtp_pass)
print("CHECK password decrypted for the connection after install:", server._smtp_routing_password() == "{PLAINTEXT}")
bridges = env["ir.module.module"].search([("name", "like", "smtp_routing_%")])
print("CHECK the bridge modules installed themselves:", set(bridges.mapped("state")) == {{"installed"}})
tokens = {TOKENS!r}
env.cr.execute("SELECT " + ", ".join(tokens) + " FROM ir_mail_server WHERE name IN ('Stock Outlook', 'Stock Gmail')")
print("CHECK OAuth token columns emptied on install:", {{v for row in env.cr.fetchall() for v in row}} == {{None}})
oauth_servers = env["ir.mail_server"].search([("name", "in", ["Stock Outlook", "Stock Gmail"])])
stored = " ".join(oauth_servers.mapped("smtp_routing_oauth_encrypted"))
leaked = any(value in stored for value in tokens.values())
print("CHECK OAuth tokens encrypted on install:", stored.count("srenc1:") == 2 and not leaked)
readable = [server[name] for server in oauth_servers for name in tokens if server[name]]
print("CHECK OAuth tokens not readable through the ORM:", not readable)
decrypted = {{}}
for server in oauth_servers:
    decrypted.update(server._smtp_routing_oauth_tokens())
print("CHECK OAuth tokens decrypted for the sign-in:", decrypted == tokens)
print("CHECK OAuth servers count as connected:", all(oauth_servers.mapped("smtp_routing_oauth_connected")))
owner = env["res.users"].create({{"name": "Lifecycle User", "login": "lifecycle_user", "email": "lc@example.com"}})
env["ir.mail_server"].create({{"name": "Lifecycle User's mailbox", "smtp_host": "smtp.example.com",
                              "from_filter": "lc@example.com", "smtp_routing_owner_id": owner.id}})
env.cr.commit()
env["ir.module.module"].search([("name", "=", "smtp_routing")]).button_immediate_uninstall()
env.cr.commit()
"""

AFTER_UNINSTALL = f"""
env.cr.execute("SELECT smtp_pass FROM ir_mail_server WHERE name = 'Stock server'")
print("CHECK plaintext restored on uninstall:", env.cr.fetchone()[0] == "{PLAINTEXT}")
env.cr.execute("SELECT count(*) FROM information_schema.columns "
               "WHERE table_name = 'ir_mail_server' AND column_name = 'smtp_routing_pass_encrypted'")
print("CHECK ciphertext column dropped on uninstall:", env.cr.fetchone()[0] == 0)
state = env["ir.module.module"].search([("name", "=", "smtp_routing")]).state
print("CHECK module uninstalled:", state == "uninstalled")
env.cr.execute("SELECT active FROM ir_mail_server WHERE name = %s", ["Lifecycle User's mailbox"])
print("CHECK a user's own server is archived on uninstall:", env.cr.fetchall() == [(False,)])
tokens = {TOKENS!r}
env.cr.execute("SELECT " + ", ".join(tokens) + " FROM ir_mail_server WHERE name IN ('Stock Outlook', 'Stock Gmail')")
restored = {{value for row in env.cr.fetchall() for value in row if value}}
print("CHECK OAuth tokens restored on uninstall:", restored == set(tokens.values()))
bridges = env["ir.module.module"].search([("name", "like", "smtp_routing_%")])
print("CHECK the bridge modules uninstalled with it:", set(bridges.mapped("state")) == {{"uninstalled"}})
"""


def run(python, odoo_path, config, workdir):
    """Return (passed, failed, output)."""
    base = [str(python), str(odoo_path / "odoo-bin")]
    common = ["-c", str(config), "-d", DB, "--log-level=warn"]
    output = []

    def odoo(*args, script=None):
        argv = base + (["shell"] if script else []) + common + list(args)
        result = subprocess.run(argv, input=script, capture_output=True, text=True, cwd=workdir)
        output.append(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"odoo-bin {' '.join(args)} exited {result.returncode}")
        return result.stdout

    checks = []
    try:
        odoo("-i", "mail,microsoft_outlook", "--stop-after-init")
        odoo("--no-http", script=STOCK_SERVER)
        odoo("-i", "smtp_routing", "--stop-after-init")
        checks += [line for line in odoo("--no-http", script=AFTER_INSTALL).splitlines() if line.startswith("CHECK")]
        checks += [line for line in odoo("--no-http", script=AFTER_UNINSTALL).splitlines() if line.startswith("CHECK")]
    except RuntimeError as error:
        output.append(str(error))
        checks.append(f"CHECK lifecycle ran to the end: False ({error})")
    passed = sum(line.endswith(": True") for line in checks)
    return passed, len(checks) - passed, "\n".join(output + checks)
