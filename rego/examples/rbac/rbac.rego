# METADATA
# title: Role-based access for Council's internal APIs
# description: |
#   The smallest useful decision: a user's roles grant actions on resource types.
#   Denials name the missing grant. Used by the PDP benchmarks as the per-request
#   check services make most often.
package examples.rbac

import rego.v1

default allow := false

# METADATA
# entrypoint: true
decision := {"allow": allow, "reasons": reasons}

allow if {
	some role in data.examples.rbac.users[input.user].roles
	input.action in data.examples.rbac.roles[role][input.type]
}

reasons contains msg if {
	not data.examples.rbac.users[input.user]
	msg := sprintf("unknown user %s", [input.user])
}

reasons contains msg if {
	data.examples.rbac.users[input.user]
	not allow
	msg := sprintf("no role of %s grants %s on %s", [input.user, input.action, input.type])
}
