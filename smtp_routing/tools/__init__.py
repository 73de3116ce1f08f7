"""Framework-free core of smtp_routing.

Plain functions over plain values (routing, limits, SMTP error classes,
ESMTP pipelining over an open session,
secrets, DNS checks). Nothing under this package imports ``odoo``: a ruff rule
(TID251) guards the boundary, and the framework-free test suite imports it with
no Odoo installed.
"""
