# METADATA
# title: AuthZEN interop, API gateway routes (medium-grained)
# description: |
#   Which identity may call which HTTP method on which route of the Todo API. Each
#   route and method needs one Todo permission (this directory's data.json); the gateway
#   does not know a todo's owner, so a permission held only for one's own todos is enough
#   here and the Todo application makes the fine-grained decision.
package examples.authzen.gateway

import rego.v1

import data.examples.authzen.todo

default allow := false

decision := {
	"allow": allow,
	"reasons": reasons,
	"obligations": {},
}

allow if {
	count(todo.grant_scopes(todo.subject_roles, permission)) > 0
	count(reasons) == 0
}

# Mounted like the Todo data; see todo.rego.
route_defs := data.examples.authzen.gateway.routes if {
	data.examples.authzen.gateway.routes
} else := data.gateway.routes

route := input.resource.id

method := input.action.name

permission := route_defs[route][method]

reasons contains msg if {
	not todo.user
	msg := sprintf("identity %q is not a known user", [input.subject.id])
}

reasons contains msg if {
	not route_defs[route]
	msg := sprintf("route %s is not served by the gateway", [route])
}

reasons contains msg if {
	route_defs[route]
	not permission
	msg := sprintf("route %s does not accept %s", [route, method])
}

reasons contains msg if {
	todo.user
	count(todo.grant_scopes(todo.subject_roles, permission)) == 0
	msg := sprintf(
		"%s has roles %v, none of which grants %s (needed for %s %s)",
		[todo.user.id, sort(todo.subject_roles), permission, method, route],
	)
}
