# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from . import ir_mail_server
from . import mail_mail
from . import mail_message
from . import mail_template
from . import mail_thread
from . import res_partner
from . import res_users
from . import smtp_routing_delivery_log
from . import smtp_routing_dkim_key
from . import smtp_routing_dns_check
from . import smtp_routing_route
from . import smtp_routing_send_as
from . import smtp_routing_server_state
from . import res_config_settings
