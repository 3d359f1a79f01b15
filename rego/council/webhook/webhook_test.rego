package council.webhook_test

import rego.v1

import data.council.webhook

# A well-formed invoice event from acme's billing system: the baseline every test varies.
base := {
	"sender": {"id": "acme-billing", "tenant": "acme"},
	"tenant": "acme",
	"event": {"type": "invoice.paid", "type_source": "body"},
	"payload": {
		"size": 120,
		"content_type": "application/json",
		"json": true,
		"keys": ["data", "type"],
		"fields": {},
	},
	"source": {"ip": "192.0.2.10"},
	"request": {"method": "POST", "path": "/hooks/acme"},
}

with_event(type) := object.union(base, {"event": {"type": type, "type_source": "body"}})

as_sender(id, tenant) := object.union(base, {"sender": {"id": id, "tenant": tenant}, "tenant": tenant})

test_billing_sender_may_send_invoices if {
	d := webhook.decision with input as base
	d.allow
	d.reasons == set()
	d.obligations.cache_ttl_seconds == 30
}

test_sender_not_allowed_event_type if {
	d := webhook.decision with input as with_event("user.deleted")
	not d.allow
	"sender acme-billing may not send event type user.deleted" in d.reasons
}

test_invoice_needs_billing_role if {
	inp := object.union(as_sender("acme-crm", "acme"), {"event": {"type": "invoice.paid", "type_source": "body"}})
	d := webhook.decision with input as inp
	not d.allow
	"event type invoice.paid needs the billing role, which sender acme-crm lacks (roles: crm)" in d.reasons
	"sender acme-crm may not send event type invoice.paid" in d.reasons
}

test_role_requirement_names_no_roles if {
	d := webhook.decision with input as base
		with data.council.webhook.senders["acme-billing"].roles as []
	"event type invoice.paid needs the billing role, which sender acme-billing lacks (roles: none)" in d.reasons
}

test_crm_sender_customer_event_allowed if {
	inp := object.union(as_sender("acme-crm", "acme"), {"event": {"type": "customer.updated", "type_source": "body"}})
	d := webhook.decision with input as inp
	d.allow
}

test_glob_does_not_cross_dots if {
	d := webhook.decision with input as with_event("invoice.line.created")
	not d.allow
	"tenant acme does not accept event type invoice.line.created" in d.reasons
}

test_tenant_does_not_accept_event_type if {
	inp := object.union(as_sender("globex-ops", "globex"), {
		"event": {"type": "invoice.paid", "type_source": "body"},
		"source": {"ip": "10.1.1.1"},
	})
	d := webhook.decision with input as inp
	not d.allow
	"tenant globex does not accept event type invoice.paid" in d.reasons
}

test_unregistered_sender if {
	d := webhook.decision with input as as_sender("mallory", "acme")
	not d.allow
	d.reasons == {"sender mallory is not registered in the webhook policy"}
}

test_sender_tenant_mismatch if {
	d := webhook.decision with input as object.union(base, {"sender": {"id": "acme-billing", "tenant": "globex"}, "tenant": "globex"})
	not d.allow
	"sender acme-billing acts for tenant acme in the webhook policy, not globex" in d.reasons
}

test_unknown_tenant if {
	d := webhook.decision with input as object.union(base, {"tenant": "initech"})
	"tenant initech does not accept webhooks" in d.reasons
}

test_missing_event_type if {
	d := webhook.decision with input as object.union(base, {"event": {"type": "", "type_source": "none"}})
	not d.allow
	d.reasons == {"the event has no type: set \"type\" in the JSON body or send a webhook-event-type header"}
}

test_oversized_payload_tenant_limit if {
	d := webhook.decision with input as object.union(base, {"payload": {"size": 70000}})
	not d.allow
	d.reasons == {"payload of 70000 bytes exceeds the 65536-byte limit for tenant acme"}
}

test_payload_at_limit_allowed if {
	d := webhook.decision with input as object.union(base, {"payload": {"size": 65536}})
	d.allow
}

test_global_size_limit_without_tenant_limit if {
	d := webhook.decision with input as object.union(base, {"payload": {"size": 300000}})
		with data.council.webhook.tenants.acme as {"event_types": ["invoice.*"]}
	"payload of 300000 bytes exceeds the 262144-byte limit for tenant acme" in d.reasons
}

test_content_type_refused if {
	d := webhook.decision with input as object.union(base, {"payload": {"content_type": "text/plain", "json": false}})
	not d.allow
	d.reasons == {"content type \"text/plain\" is not accepted (accepted: application/json)"}
}

test_json_content_type_needs_json_object if {
	d := webhook.decision with input as object.union(base, {"payload": {"json": false}})
	d.reasons == {"the body is not a JSON object"}
}

test_method_must_be_post if {
	d := webhook.decision with input as object.union(base, {"request": {"method": "PUT"}})
	d.reasons == {"webhooks are delivered with POST, not PUT"}
}

test_sender_networks if {
	inp := object.union(as_sender("globex-ops", "globex"), {
		"event": {"type": "deploy.finished", "type_source": "body"},
		"source": {"ip": "203.0.113.9"},
	})
	d := webhook.decision with input as inp
	d.reasons == {"sender globex-ops may not send from 203.0.113.9 (allowed: 127.0.0.0/8, 10.0.0.0/8)"}
	allowed := webhook.decision with input as object.union(inp, {"source": {"ip": "10.2.3.4"}})
	allowed.allow
}

test_test_mode_events_refused_where_configured if {
	inp := object.union(as_sender("globex-ops", "globex"), {
		"event": {"type": "alert.fired", "type_source": "body"},
		"source": {"ip": "127.0.0.1"},
		"payload": {"fields": {"livemode": false}},
	})
	d := webhook.decision with input as inp
	d.reasons == {"tenant globex does not accept test-mode events (livemode is false)"}
	live := webhook.decision with input as object.union(inp, {"payload": {"fields": {"livemode": true}}})
	live.allow
}

test_test_mode_events_accepted_by_default if {
	d := webhook.decision with input as object.union(base, {"payload": {"fields": {"livemode": false}}})
	d.allow
}

test_denials_keep_cache_ttl if {
	d := webhook.decision with input as with_event("user.deleted")
	d.obligations.cache_ttl_seconds == 30
}
