package examples.authzen.todo_test

import rego.v1

import data.examples.authzen.todo

rick := "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

morty := "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

beth := "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"

ask(subject, action, owner) := {
	"subject": {"type": "user", "id": subject},
	"action": {"name": action},
	"resource": {"type": "todo", "id": "t-1", "properties": {"ownerID": owner}},
	"context": {},
}

test_everyone_reads_users_and_todos if {
	every subject in [rick, morty, beth] {
		todo.decision.allow with input as ask(subject, "can_read_user", "")
		todo.decision.allow with input as ask(subject, "can_read_todos", "")
	}
}

test_editors_create_viewers_do_not if {
	todo.decision.allow with input as ask(morty, "can_create_todo", "")
	d := todo.decision with input as ask(beth, "can_create_todo", "")
	not d.allow
	d.reasons == {`beth@the-smiths.com has roles ["viewer"], none of which grants can_create_todo`}
}

test_editor_updates_and_deletes_own_todos_only if {
	todo.decision.allow with input as ask(morty, "can_update_todo", "morty@the-citadel.com")
	todo.decision.allow with input as ask(morty, "can_delete_todo", "morty@the-citadel.com")
	d := todo.decision with input as ask(morty, "can_delete_todo", "rick@the-citadel.com")
	not d.allow
	d.reasons == {"morty@the-citadel.com holds can_delete_todo only for their own todos; this todo belongs to rick@the-citadel.com"}
}

test_admin_and_evil_genius_act_on_any_todo if {
	todo.decision.allow with input as ask(rick, "can_update_todo", "morty@the-citadel.com")
	todo.decision.allow with input as ask(rick, "can_delete_todo", "morty@the-citadel.com")
}

test_viewer_cannot_update_even_own_todo if {
	d := todo.decision with input as ask(beth, "can_update_todo", "beth@the-smiths.com")
	not d.allow
	d.reasons == {`beth@the-smiths.com has roles ["viewer"], none of which grants can_update_todo`}
}

test_missing_owner_is_not_ownership if {
	req := json.remove(ask(morty, "can_update_todo", ""), ["resource/properties"])
	d := todo.decision with input as req
	not d.allow
	d.reasons == {"morty@the-citadel.com holds can_update_todo only for their own todos; this todo belongs to no one (the request names no ownerID)"}
}

test_unknown_subject_denied if {
	d := todo.decision with input as ask("nobody", "can_read_todos", "")
	not d.allow
	d.reasons == {`subject "nobody" is not a known user`}
}
