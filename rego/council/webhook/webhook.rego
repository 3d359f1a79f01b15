# METADATA
# title: Council webhook admission
# description: |
#   Decides whether a webhook whose signature the webhook PEP has already verified may reach
#   the receiver. Senders are allowed per tenant and per event type, some event types need a
#   role, payloads have a size limit and a content type, and a sender may be held to its
#   networks. Every denial carries reasons a sender can act on.
#
#   Input (built by pep_sidecars/webhook.py):
#     sender: {id, tenant}       the verified sender and the tenant the PEP registered it for
#     tenant                      the same tenant, at the top for readability
#     event: {type, type_source}  type from the JSON body's "type" (or the webhook-event-type
#                                 header when the body has none); type_source: body|header|none
#     payload: {size, content_type, json, keys, fields}
#     source: {ip}
#     request: {method, path}
package council.webhook

import rego.v1

default allow := false

# METADATA
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": reasons,
	"obligations": obligations,
}

allow if count(reasons) == 0

sender := data.council.webhook.senders[input.sender.id]

tenant := data.council.webhook.tenants[input.tenant]

event_type := object.get(input, ["event", "type"], "")

sender_roles := object.get(sender, "roles", [])

roles_text := concat(", ", sort(sender_roles)) if count(sender_roles) > 0

else := "none"

# The tenant's own limit wins over the global one.
size_limit := object.get(tenant, "max_payload_bytes", data.council.webhook.max_payload_bytes)

matches(patterns, value) if {
	some pattern in patterns
	glob.match(pattern, ["."], value)
}

reasons contains msg if {
	not sender
	msg := sprintf("sender %s is not registered in the webhook policy", [input.sender.id])
}

reasons contains msg if {
	sender.tenant != input.tenant
	msg := sprintf("sender %s acts for tenant %s in the webhook policy, not %s", [input.sender.id, sender.tenant, input.tenant])
}

reasons contains msg if {
	not tenant
	msg := sprintf("tenant %s does not accept webhooks", [input.tenant])
}

reasons contains msg if {
	event_type == ""
	msg := "the event has no type: set \"type\" in the JSON body or send a webhook-event-type header"
}

reasons contains msg if {
	event_type != ""
	tenant
	not matches(tenant.event_types, event_type)
	msg := sprintf("tenant %s does not accept event type %s", [input.tenant, event_type])
}

reasons contains msg if {
	event_type != ""
	sender
	not matches(object.get(sender, "event_types", []), event_type)
	msg := sprintf("sender %s may not send event type %s", [input.sender.id, event_type])
}

reasons contains msg if {
	event_type != ""
	sender
	some pattern, role in data.council.webhook.required_roles
	glob.match(pattern, ["."], event_type)
	not role in sender_roles
	msg := sprintf("event type %s needs the %s role, which sender %s lacks (roles: %s)", [event_type, role, input.sender.id, roles_text])
}

reasons contains msg if {
	input.payload.size > size_limit
	msg := sprintf("payload of %d bytes exceeds the %d-byte limit for tenant %s", [input.payload.size, size_limit, input.tenant])
}

reasons contains msg if {
	not input.payload.content_type in data.council.webhook.content_types
	accepted := concat(", ", data.council.webhook.content_types)
	msg := sprintf("content type %q is not accepted (accepted: %s)", [input.payload.content_type, accepted])
}

reasons contains msg if {
	input.payload.content_type == "application/json"
	not input.payload.json
	msg := "the body is not a JSON object"
}

reasons contains msg if {
	input.request.method != "POST"
	msg := sprintf("webhooks are delivered with POST, not %s", [input.request.method])
}

reasons contains msg if {
	networks := object.get(sender, "networks", [])
	count(networks) > 0
	not from_networks(networks)
	msg := sprintf("sender %s may not send from %s (allowed: %s)", [input.sender.id, input.source.ip, concat(", ", networks)])
}

reasons contains msg if {
	tenant.accept_test_events == false
	input.payload.fields.livemode == false
	msg := sprintf("tenant %s does not accept test-mode events (livemode is false)", [input.tenant])
}

from_networks(networks) if {
	some cidr in networks
	net.cidr_contains(cidr, input.source.ip)
}

obligations["cache_ttl_seconds"] := data.council.webhook.cache_ttl_seconds
