# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from . import mail_compose_message
from . import smtp_routing_personal_server
from . import smtp_routing_route_explain
from . import smtp_routing_test_email
