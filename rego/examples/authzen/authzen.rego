# METADATA
# title: AuthZEN interop policies
# description: |
#   The decision behind Council's AuthZEN Access Evaluation API for the OpenID AuthZEN
#   interop scenarios. The input is the AuthZEN request: subject, action, resource and
#   context. Routes (resource type "route") go to the API-gateway policy, users and todos
#   to the Todo application policy; any other resource type is denied with a reason.
package examples.authzen

import rego.v1

import data.examples.authzen.gateway
import data.examples.authzen.todo

todo_types := {"todo", "user"}

# METADATA
# entrypoint: true
decision := todo.decision if input.resource.type in todo_types

decision := gateway.decision if input.resource.type == "route"

decision := {
	"allow": false,
	"reasons": {sprintf("no policy decides on resources of type %q", [input.resource.type])},
	"obligations": {},
} if {
	not input.resource.type in todo_types
	input.resource.type != "route"
}
