package examples.authzen_test

import rego.v1

import data.examples.authzen

morty := "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

request(action, resource) := {
	"subject": {"type": "user", "id": morty},
	"action": {"name": action},
	"resource": resource,
}

test_todos_and_users_go_to_the_todo_policy if {
	authzen.decision.allow with input as request("can_read_user", {"type": "user", "id": "beth@the-smiths.com"})
	d := authzen.decision with input as request("can_update_todo", {
		"type": "todo",
		"id": "t-1",
		"properties": {"ownerID": "rick@the-citadel.com"},
	})
	not d.allow
	count(d.reasons) == 1
}

test_routes_go_to_the_gateway_policy if {
	authzen.decision.allow with input as request("PUT", {"type": "route", "id": "/todos/{todoId}"})
}

test_other_resource_types_are_denied if {
	d := authzen.decision with input as request("can_read", {"type": "document", "id": "1"})
	d == {
		"allow": false,
		"reasons": {`no policy decides on resources of type "document"`},
		"obligations": {},
	}
}
