# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from . import test_access
from . import test_admin_screens
from . import test_credentials
from . import test_deliverability
from . import test_delivery_log
from . import test_i18n
from . import test_install
from . import test_lanes
from . import test_live_delivery
from . import test_password_encryption
from . import test_personal_servers
from . import test_queue
from . import test_routing
from . import test_server_config
from . import test_test_email
from . import test_ui
