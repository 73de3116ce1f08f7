# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The one-click unsubscribe link of bulk mail (RFC 8058).

A POST (what Gmail, Yahoo and Outlook send for ``List-Unsubscribe-Post:
List-Unsubscribe=One-Click``, or the button of the page below) blacklists the
address the link names. A GET only shows that button: link scanners and
previews fetch URLs and must not unsubscribe anyone.
"""

from markupsafe import Markup, escape

from odoo import http
from odoo.http import request

PAGE = Markup(
    '<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
    '<title>%(title)s</title></head><body style="font-family:sans-serif;max-width:36em;margin:3em auto">'
    "<h1>%(title)s</h1><p>%(text)s</p>%(form)s</body></html>"
)
FORM = Markup(
    '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
    '<button type="submit">%(button)s</button></form>'
)


class SmtpRoutingUnsubscribe(http.Controller):
    def _page(self, title, text, form="", status=200):
        body = PAGE % {"title": title, "text": text, "form": form}
        return request.make_response(
            str(body),
            headers=[("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")],
            status=status,
        )

    @http.route(
        "/smtp_routing/unsubscribe/<string:token>",
        type="http",
        auth="public",
        methods=["GET", "POST"],
        csrf=False,  # posted by mail providers, without any session
        save_session=False,
    )
    def smtp_routing_unsubscribe(self, token, **post):
        Blacklist = request.env["mail.blacklist"].sudo()
        address = Blacklist._smtp_routing_unsubscribe_address(token)
        env = request.env
        if not address:
            return self._page(
                env._("Link not valid"),
                env._("This unsubscribe link is not valid. Reply to the email to ask to be removed."),
                status=404,
            )
        if request.httprequest.method == "POST":
            Blacklist._smtp_routing_unsubscribe(address)
            return self._page(
                env._("Unsubscribed"),
                escape(env._("%(address)s will receive no more mailings from us.", address=address)),
            )
        return self._page(
            env._("Unsubscribe"),
            escape(env._("Stop sending mailings to %(address)s?", address=address)),
            FORM % {"button": env._("Unsubscribe")},
        )
