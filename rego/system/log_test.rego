package system.log_test

import rego.v1

import data.system.log

test_masks_bearer_header if {
	m := log.mask with input as {"attributes": {"request": {"http": {"headers": {"authorization": "Bearer x"}}}}}
	m == {"/input/attributes/request/http/headers/authorization"}
}

test_masks_nothing_without_secrets if {
	m := log.mask with input as {"subject": {"id": "bob"}}
	m == set()
}
