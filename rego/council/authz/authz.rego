# METADATA
# title: Council gateway request authorization
# description: |
#   Decides whether a subject may perform an action on a resource. A denial always
#   carries human-readable reasons; obligations tell the enforcement point what it must
#   do when it lets the request through.
package council.authz

import rego.v1

default allow := false

# METADATA
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": reasons,
	"obligations": obligations,
}

allow if {
	count(reasons) == 0
	granted
}

# The permissions of every role the subject holds, inherited roles included.
permissions contains perm if {
	some role in subject_roles
	some perm in data.council.authz.roles[role].permissions
}

subject_roles contains role if {
	some start in object.get(user, "roles", [])
	some role in graph.reachable(role_graph, {start})
}

role_graph[name] := object.get(role, "inherits", []) if some name, role in data.council.authz.roles

user := data.council.authz.users[input.subject.id]

required_permission := sprintf("%s:%s", [input.resource.type, input.action])

granted if required_permission in permissions

granted if "*" in permissions

reasons contains msg if {
	not user
	msg := sprintf("subject '%s' is not a known user", [input.subject.id])
}

reasons contains msg if {
	user
	not granted
	msg := sprintf("role(s) [%s] do not grant '%s'", [concat(", ", sort(subject_roles)), required_permission])
}

reasons contains msg if {
	user.tenant != input.resource.tenant
	msg := sprintf("subject belongs to tenant '%s', resource to tenant '%s'", [user.tenant, input.resource.tenant])
}

reasons contains msg if {
	some label in object.get(input.resource, "labels", [])
	restricted := data.council.authz.restricted_labels[label]
	not user.clearance >= restricted
	msg := sprintf("label '%s' needs clearance %d, subject has %d", [label, restricted, object.get(user, "clearance", 0)])
}

reasons contains msg if {
	input.action in data.council.authz.high_risk_actions
	not device_compliant
	msg := sprintf("high-risk action '%s' needs a compliant device (failed: %s)", [input.action, concat(", ", sort(failed_posture_checks))])
}

reasons contains msg if {
	count(networks) > 0
	not from_allowed_network
	msg := sprintf("source address %s is outside the tenant's networks (%s)", [input.context.ip, concat(", ", networks)])
}

reasons contains msg if {
	edition := data.council.authz.tenants[input.resource.tenant].edition
	feature := object.get(input, ["context", "feature"], "")
	feature != ""
	not feature in data.council.authz.editions[edition].features
	msg := sprintf("feature '%s' is not part of the %s edition", [feature, edition])
}

networks := object.get(data.council.authz.tenants, [input.resource.tenant, "networks"], [])

from_allowed_network if {
	some cidr in networks
	net.cidr_contains(cidr, input.context.ip)
}

failed_posture_checks contains check if {
	some check in data.council.authz.posture_checks
	not object.get(input.subject, ["device", "posture", check], false) == true
}

device_compliant if count(failed_posture_checks) == 0

obligations["record_session"] := true if {
	input.action in data.council.authz.high_risk_actions
}

obligations["cache_ttl_seconds"] := ttl if {
	ttl := data.council.authz.cache_ttl_seconds
}
