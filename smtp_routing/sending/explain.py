# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Words for the planner's codes (``tools/planning``), in the language of the environment given.

*Which Server?* shows a plan's lines with these words; a mail stores its plan's codes (and what happened
after: sent through, deferred, refused) and why it waits (``reason_text``: a limit, a cooling server, a
recipient's retry quoting the server's reply as written) and renders them here for whoever reads it, dates
in the reader's time zone.
"""

from odoo import fields
from odoo.tools.misc import format_datetime

from ..tools import planning
from ..tools.smtp_errors import Outcome


def _when(env, value):
    """A date (a datetime, or ISO UTC text as stored) in the reader's time zone and date format."""
    return format_datetime(env, fields.Datetime.to_datetime(value)) if value else ""


def _language(env, code):
    return dict(env["res.lang"].get_installed()).get(code, code) or env._("unknown")


def route_text(env, plan):
    """Why the plan's route takes the mail (or why Odoo chooses)."""
    params = plan.route_params
    route = params.get("route", "")
    if plan.route_code == "route_forced":
        if params.get("by") == "template":
            return env._("Route %(route)s, chosen by the template.", route=route)
        return env._("Route %(route)s, chosen by the template or the composer.", route=route)
    if plan.route_code == "route_matched":
        purposes = dict(env["smtp_routing.route.explain"]._fields["purpose"]._description_selection(env))
        held = []
        for condition, value in params.get("held") or []:
            if condition == "purpose":
                held.append(env._("the kind of mail is %(purpose)s", purpose=purposes.get(value, value)))
            elif condition == "lang":
                held.append(env._("the recipient reads %(language)s", language=_language(env, value)))
            elif condition == "company":
                company = env["res.company"].sudo().browse(value).exists()
                held.append(env._("the company is %(company)s", company=company.name or value))
            elif condition == "model":
                document = env["ir.model"].sudo()._get(value).name or value
                held.append(env._("the mail is about a %(document)s", document=document))
        return env._("Route %(route)s, because %(conditions)s.", route=route, conditions="; ".join(held))
    if plan.route_code == "route_default":
        return env._("Route %(route)s, the default route: no other route applies.", route=route)
    if plan.route_code == "route_any":
        return env._("Route %(route)s, which takes any mail.", route=route)
    return env._("No route applies: Odoo chooses by priority and by what each server may send.")


def line_text(env, line):
    """A candidate's role (and why it is not usable now), or why a server is left out."""
    if not line.candidate:
        return {
            planning.PERSONAL_SERVER: env._("another user's own server"),
            planning.OTHER_COMPANY: env._("it belongs to another company"),
            planning.FROM_NOT_COVERED: env._("it may not send from this address (its From filter)"),
            planning.NOT_ALLOWED_BY_SEND_AS: env._("the Send-As permission does not name this server"),
        }.get(line.code, line.code)
    if line.code == planning.OWN_SERVER:
        role = env._("the author's own server (Preferences)")
    elif line.code == planning.ROUTE_PRIMARY:
        role = env._("first server of the route")
    elif line.code == planning.ROUTE_FALLBACK:
        role = env._("stand-in number %(number)s, if the ones above fail", number=line.params.get("position"))
    elif line.code == planning.ODOO_CHOICE:
        role = env._("Odoo's choice (priority, default server and From filter)")
    elif line.code == planning.SAME_SENDER:
        role = env._("may send as the same sender; used if the ones above fail")
    elif line.code == planning.SEND_AS_SERVER:
        role = env._("named by the Send-As permission")
    elif line.code == planning.COMMAND_LINE:
        role = env._("Odoo's command-line settings")
    else:
        role = line.code
    if line.params.get("notification_from"):
        role = env._(
            "%(role)s; it may not send from this address, so the mail would go out from the notification address",
            role=role,
        )
    if line.status == planning.COOLING:
        role = f"{role} - " + env._("paused after a failure until %(when)s", when=_when(env, line.until))
    elif line.status == planning.LIMITED:
        role = f"{role} - " + env._("a sending limit is used up until %(when)s", when=_when(env, line.until))
    return role


def line_name(env, line):
    return line.name or (env._("Odoo's command-line settings") if line.server_id is None else f"#{line.server_id}")


def plan_text(env, plan):
    lines = [route_text(env, plan)]
    for index, line in enumerate(plan.candidates, 1):
        lines.append(f"{index}. {line_name(env, line)}: {line_text(env, line)}")
    for line in plan.skipped:
        reason = line_text(env, line)
        lines.append(env._("Left out: %(server)s - %(reason)s", server=line_name(env, line), reason=reason))
    return "\n".join(lines)


def note_text(env, code, params):
    """What happened to a mail after its plan (codes the queue stores beside the plan)."""
    if code == "sent_through":
        return env._("Sent through %(server)s.", server=params.get("server", "-"))
    if code == "deferred":
        return deferral_text(env, params)
    if code == "refused_recipients":
        return env._("Refused recipients: %(refused)s", refused=params.get("refused"))
    if code == "send_as_refused":
        return env._("Refused before sending: Send-As denied.")
    return params.get("text") or code


def reason_text(env, reason):
    """Why a mail waits, stored by the queue as ``[code, params]`` (``sending/run``); text stored by older
    versions is shown as it was written. A server's reply is quoted as the server wrote it."""
    if not reason:
        return ""
    if isinstance(reason, str):
        return reason
    code, params = reason[0], (reason[1] if len(reason) > 1 else None) or {}
    if code == "limit":
        names = env["smtp_routing.server.state"]._smtp_routing_limit_names()
        return env._(
            "%(server)s reached its %(limit)s limit",
            server=params.get("server"),
            limit=names.get(params.get("limit"), params.get("limit")),
        )
    if code == "cooling":
        return env._("%(server)s is cooling down after a failure", server=params.get("server"))
    if code == "no_server":
        return env._("no server could take it")
    if code == "retry":
        return env._(
            "%(count)s recipient message(s) refused for now, next try %(attempt)s: %(reason)s",
            count=params.get("count"),
            attempt=params.get("attempt"),
            reason=reason_text(env, params.get("reason")),
        )
    if code == "reply":
        outcome = Outcome(
            params.get("category") or "other",
            params.get("smtp_code"),
            params.get("enhanced_status"),
            params.get("text") or "",
        )
        words = env["smtp_routing.delivery.log"]._smtp_routing_words(outcome)
        return f"{params['address']}: {words}" if params.get("address") else words
    return params.get("text") or code


def deferral_text(env, deferral):
    """A deferral (``{"slot": ISO UTC, "reason": [code, params]}``) in ``env``'s language and time zone."""
    return env._(
        "Deferred to %(slot)s: %(reason)s",
        slot=_when(env, deferral.get("slot")),
        reason=reason_text(env, deferral.get("reason")),
    )


def stored_text(env, stored):
    """A mail's stored routing (``{"plan": ..., "notes": [[code, params], ...]}``) in ``env``'s language."""
    parts = []
    if stored.get("plan"):
        parts.append(plan_text(env, planning.Plan.from_json(stored["plan"])))
    parts += [note_text(env, code, params or {}) for code, params in stored.get("notes") or []]
    return "\n".join(parts)
