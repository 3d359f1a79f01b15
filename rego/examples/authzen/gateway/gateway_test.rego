package examples.authzen.gateway_test

import rego.v1

import data.examples.authzen.gateway

summer := "CiRmZDI2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

jerry := "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

call(subject, method, route) := {
	"subject": {"type": "identity", "id": subject},
	"action": {"name": method},
	"resource": {"type": "route", "id": route},
	"context": {},
}

test_editor_calls_every_route if {
	every method, route in {"GET": "/todos", "POST": "/todos", "PUT": "/todos/{todoId}", "DELETE": "/todos/{todoId}"} {
		gateway.decision.allow with input as call(summer, method, route)
	}
}

test_viewer_reads_but_does_not_write if {
	gateway.decision.allow with input as call(jerry, "GET", "/users/{userId}")
	gateway.decision.allow with input as call(jerry, "GET", "/todos")
	d := gateway.decision with input as call(jerry, "DELETE", "/todos/{todoId}")
	not d.allow
	d.reasons == {`jerry@the-smiths.com has roles ["viewer"], none of which grants can_delete_todo (needed for DELETE /todos/{todoId})`}
}

test_unknown_route_and_method if {
	d := gateway.decision with input as call(summer, "GET", "/admin")
	not d.allow
	d.reasons == {"route /admin is not served by the gateway"}
	e := gateway.decision with input as call(summer, "PATCH", "/todos")
	not e.allow
	e.reasons == {"route /todos does not accept PATCH"}
}

test_unknown_identity if {
	d := gateway.decision with input as call("nobody", "GET", "/todos")
	not d.allow
	d.reasons == {`identity "nobody" is not a known user`}
}
