package examples.rbac_test

import rego.v1

import data.examples.rbac

test_reader_reads if rbac.decision.allow with input as {"user": "eve", "action": "read", "type": "dataset"}

test_reader_cannot_write if {
	d := rbac.decision with input as {"user": "eve", "action": "write", "type": "dataset"}
	not d.allow
	d.reasons == {"no role of eve grants write on dataset"}
}

test_unknown_user if {
	d := rbac.decision with input as {"user": "zed", "action": "read", "type": "dataset"}
	d.reasons == {"unknown user zed"}
}
