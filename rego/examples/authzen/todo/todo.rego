# METADATA
# title: AuthZEN interop, Todo application (fine-grained)
# description: |
#   Which user may read users and todos, create todos, and update or delete a given todo.
#   Roles grant permissions either on any todo or only on the subject's own todos; the
#   owner comes with the request (resource.properties.ownerID), since the PDP keeps no
#   todo state. Users and roles are in this directory's data.json.
package examples.authzen.todo

import rego.v1

default allow := false

decision := {
	"allow": allow,
	"reasons": reasons,
	"obligations": {},
}

allow if {
	permitted
	count(reasons) == 0
}

# opa mounts a data.json under its directory's path relative to the root it loads:
# data.examples.authzen.todo when the whole rego/ tree is built (the shipped bundle),
# data.todo when rego/examples/authzen is loaded on its own (its `opa test`).
known_users := data.examples.authzen.todo.users if {
	data.examples.authzen.todo.users
} else := data.todo.users

role_defs := data.examples.authzen.todo.roles if {
	data.examples.authzen.todo.roles
} else := data.todo.roles

user := known_users[input.subject.id]

role_graph[name] := object.get(role, "inherits", []) if some name, role in role_defs

# The subject's roles, inherited ones included.
subject_roles contains role if {
	some start in user.roles
	some role in graph.reachable(role_graph, {start})
}

# The scopes ("any" or "own") in which `roles` grant `permission`.
grant_scopes(roles, permission) := {scope |
	some role in roles
	scope := role_defs[role].grants[permission]
}

scopes := grant_scopes(subject_roles, input.action.name)

owner := object.get(input.resource, ["properties", "ownerID"], "")

permitted if "any" in scopes

permitted if {
	"own" in scopes
	owner == user.id
}

reasons contains msg if {
	not user
	msg := sprintf("subject %q is not a known user", [input.subject.id])
}

reasons contains msg if {
	user
	count(scopes) == 0
	msg := sprintf(
		"%s has roles %v, none of which grants %s",
		[user.id, sort(subject_roles), input.action.name],
	)
}

reasons contains msg if {
	scopes == {"own"}
	owner != user.id
	msg := sprintf(
		"%s holds %s only for their own todos; this todo belongs to %s",
		[user.id, input.action.name, owner_text],
	)
}

owner_text := owner if owner != ""

else := "no one (the request names no ownerID)"
