import { registry } from "@web/core/registry";
import { stepUtils } from "@web_tour/tour_service/tour_utils";

// The SMTP server the test started on 127.0.0.1 ("127.0.0.1:port"), handed over by the Python test
// through sessionStorage (it survives the page loads of a tour).
function tourSmtpHost() {
    return sessionStorage.getItem("smtp_routing_tour_host") || "127.0.0.1:2525";
}

/**
 * An admin goes from Settings to the dashboard, creates a server, sends a real test email
 * and reads the server's delivery history.
 */
registry.category("web_tour.tours").add("smtp_routing_admin_tour", {
    url: "/odoo/settings",
    steps: () => [
        {
            content: "Open the dashboard from the Outgoing Mail Routing section of Settings",
            trigger: ".o_setting_container .settings button:contains(Outgoing Mail Dashboard)",
            run: "click",
        },
        {
            content: "Create a server",
            trigger: ".o_kanban_view .o-kanban-button-new",
            run: "click",
        },
        {
            trigger: ".o_form_view div[name=name] input",
            run: "edit Tour Relay",
        },
        {
            content: "Host and port in one field, [host]:port style",
            trigger: ".o_form_view div[name=smtp_host] input",
            run: `edit ${tourSmtpHost()} && press Tab`,
        },
        {
            trigger: ".o_notebook a.nav-link:contains(Identity)",
            run: "click",
        },
        {
            trigger: ".o_form_view div[name=smtp_routing_from_email] input",
            run: "edit office@practice.example && press Tab",
        },
        {
            trigger: ".o_form_view div[name=smtp_routing_from_name] input",
            run: "edit Practice Office && press Tab",
        },
        {
            trigger: ".o_notebook a.nav-link:contains(Routing)",
            run: "click",
        },
        {
            content: "Offer it to users in their preferences",
            trigger: ".o_form_view div[name=smtp_routing_user_selectable] input",
            run: "click",
        },
        {
            trigger: ".o_form_button_save:enabled",
            run: "click",
        },
        {
            content: "Saved: the breadcrumb names the server",
            trigger: ".o_breadcrumb:contains(Tour Relay)",
        },
        {
            trigger: ".o_form_view .o_form_saved",
        },
        {
            trigger: ".o_notebook a.nav-link:contains(Connection)",
            run: "click",
        },
        {
            content: "The saved host was split into host and port",
            trigger: ".o_form_view div[name=smtp_host] input:value(127.0.0.1)",
        },
        {
            content: "A new server has not delivered anything yet, and says so",
            trigger: ".o_form_view div[name=smtp_routing_badges] .badge:contains(Never delivered)",
        },
        {
            trigger: ".o_form_statusbar button[name=action_smtp_routing_test_email]",
            run: "click",
        },
        {
            trigger: ".modal div[name=email_to] input",
            run: "edit client@example.com",
        },
        {
            trigger: ".modal footer button[name=action_send]:contains(Send Test Email)",
            run: "click",
        },
        {
            content: "The server accepted it",
            trigger: ".modal .alert-success:contains(Delivered)",
        },
        {
            trigger: ".modal footer button:contains(Close)",
            run: "click",
        },
        {
            trigger: "body:not(:has(.modal))",
        },
        {
            content: "Once a mail went through, the server is healthy",
            trigger: ".o_form_view div[name=smtp_routing_badges] .badge:contains(Healthy)",
        },
        {
            trigger: ".o_notebook a.nav-link:contains(History)",
            run: "click",
        },
        {
            content: "The history shows the delivered test email",
            trigger: "div[name=smtp_routing_log_ids] .o_data_row:contains(Test email):contains(Sent)",
        },
        {
            content: "Back to the dashboard: the card counts it",
            trigger: ".o_breadcrumb a:contains(Outgoing Mail Dashboard)",
            run: "click",
        },
        {
            trigger: ".o_kanban_record:contains(Tour Relay) .o_smtp_routing_sent_today:contains(1)",
        },
    ],
});

/**
 * A user picks that server in their preferences and sends themselves a test (From = To = the user).
 */
registry.category("web_tour.tours").add("smtp_routing_user_tour", {
    url: "/odoo",
    steps: () => [
        {
            trigger: ".o_user_menu button",
            run: "click",
        },
        {
            trigger: "[data-menu=settings]",
            run: "click",
        },
        {
            trigger: ".modal div[name=smtp_routing_server_id] input",
            run: "edit Tour",
        },
        {
            trigger: ".o-autocomplete--dropdown-item a:contains(Tour Relay)",
            run: "click",
        },
        {
            content: "Send a test to my own address",
            trigger: ".modal button[name=action_smtp_routing_test_own_server]",
            run: "click",
        },
        {
            trigger: ".o_notification:contains(Test email sent)",
        },
        {
            trigger: ".modal button[name=preference_save]",
            run: "click",
        },
        {
            trigger: "body:not(:has(.modal))",
        },
    ],
});

/**
 * An admin reads a failing server on the dashboard: the badge says so, with what fails (issue 19).
 */
registry.category("web_tour.tours").add("smtp_routing_failing_server_tour", {
    url: "/odoo/action-smtp_routing.ir_mail_server_dashboard_action",
    steps: () => [
        {
            content: "The card of a server whose attempts all failed is not green",
            trigger: ".o_kanban_record:contains(Broken Relay) div[name=smtp_routing_health] .badge:contains(Failing)",
        },
        {
            content: "It says what fails",
            trigger: ".o_kanban_record:contains(Broken Relay) .o_smtp_routing_failing:contains(Authentication failed)",
        },
        {
            trigger: ".o_kanban_record:contains(Broken Relay) .fw-bold:contains(Broken Relay)",
            run: "click",
        },
        {
            content: "The form says it too, with the server's words",
            trigger: ".o_form_view div[name=smtp_routing_failing]:contains(Authentication failed):contains(535)",
        },
        {
            trigger: ".o_form_view div[name=smtp_routing_badges] .badge:contains(Failing)",
        },
    ],
});

/**
 * A user opens the full composer from a contact's chatter: "Send Through" is there from the start (issue 19).
 */
registry.category("web_tour.tours").add("smtp_routing_composer_tour", {
    steps: () => [
        {
            trigger: ".o-mail-Chatter button:contains(Send message)",
            run: "click",
        },
        {
            trigger: ".o-mail-Composer button[aria-label='Full composer']",
            run: "click",
        },
        {
            content: "A new composer offers the selectable route",
            trigger: ".o_mail_composer_form_view div[name=smtp_routing_route_id] input",
            run: "click",
        },
        {
            trigger: ".o-autocomplete--dropdown-item a:contains(Client Letters)",
            run: "click",
        },
        {
            trigger: ".o_mail_composer_form_view div[name=smtp_routing_route_id] input:value(Client Letters)",
        },
        {
            trigger: ".modal .o_form_button_cancel, .modal button:contains(Discard)",
            run: "click",
        },
        {
            trigger: "body:not(:has(.modal))",
        },
    ],
});

/**
 * A Spanish-speaking user mails a contact from the contacts list with a From they may not use: the composer
 * refuses before anything is posted, in Spanish, and tells them whom to ask (issue 19). Selectors do not
 * depend on Odoo's own wording (its Spanish terms are not loaded); only the refusal is matched as text.
 */
registry.category("web_tour.tours").add("smtp_routing_send_as_spanish_tour", {
    steps: () => [
        {
            trigger: ".o_control_panel .o_switch_view.o_list",
            run: "click",
        },
        {
            trigger: ".o_list_view .o_data_row:contains(Tour Client) .o_list_record_selector input",
            run: "click",
        },
        {
            content: "The list's action menu (the gear)",
            trigger: ".o_cp_action_menus button:has(.fa-cog)",
            run: "click",
        },
        {
            content: "Mail's own Send email action opens the composer on the selected contact",
            trigger: ".o-dropdown--menu .o_menu_item:contains(Send email), .o-dropdown--menu .o_menu_item:contains(Enviar correo)",
            run: "click",
        },
        {
            content: "Type a From that is not the user's own",
            trigger: ".modal div[name=email_from] input",
            run: "edit director@client-firm.example",
        },
        {
            trigger: ".modal div[name=subject] input",
            run: "edit Presupuesto",
        },
        {
            trigger: ".modal div[name=body] .odoo-editor-editable",
            run: "editor Buenos días",
        },
        {
            content: "A mass-mode composer needs a Reply-to (Odoo's rule): it is on the second tab",
            trigger: ".modal .o_notebook .nav-item:last-child a.nav-link",
            run: "click",
        },
        {
            trigger: ".modal div[name=reply_to] input",
            run: "edit lucia@practice.example",
        },
        {
            trigger: ".modal div[name=subject] input:value(Presupuesto)",
        },
        {
            trigger: ".modal footer button.o_mail_send:enabled",
            run: "click",
        },
        {
            content: "The refusal, in Spanish, with what to do and no developer-mode menu path",
            trigger:
                ".modal .o_error_dialog:contains(no puede enviar como director@client-firm.example):contains(pida a un administrador)",
        },
    ],
});
