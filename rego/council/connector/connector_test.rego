package council.connector_test

import rego.v1

import data.council.connector

caller(id, scopes) := {"id": id, "tenant": "acme", "scopes": scopes, "verified": true}

request(op, name, labels, subject) := {
	"operation": op,
	"dataset": {"name": name, "labels": labels, "tenant": "acme", "connector": "warehouse", "kind": "sqlite"},
	"subject": subject,
}

test_read_internal_with_scope_allowed if {
	d := connector.decision with input as request("read", "orders", ["internal"], caller("bob", ["connector:read:orders"]))
	d.allow
	d.reasons == set()
	d.obligations == {"max_rows": 1000, "cache_ttl_seconds": 30}
}

test_read_needs_dataset_scope if {
	d := connector.decision with input as request("read", "orders", ["internal"], caller("bob", ["connector:read:invoices"]))
	not d.allow
	d.reasons == {"operation 'read' on dataset 'orders' needs scope 'connector:read:orders'"}
}

test_query_needs_query_scope if {
	d := connector.decision with input as request("query", "orders", ["internal"], caller("bob", ["connector:read:orders"]))
	not d.allow
	d.reasons == {"operation 'query' on dataset 'orders' needs scope 'connector:query:orders'"}
}

test_pii_needs_pii_scope_and_clearance if {
	d := connector.decision with input as request("read", "customers", ["pii"], caller("bob", ["connector:read:customers"]))
	not d.allow
	"label 'pii' on dataset 'customers' needs scope 'connector:read:pii'" in d.reasons
	"label 'pii' on dataset 'customers' needs clearance 2; caller 'bob' has 1" in d.reasons
}

test_pii_allowed_with_scope_and_clearance_caps_rows if {
	scopes := ["connector:read:customers", "connector:read:pii"]
	d := connector.decision with input as request("read", "customers", ["pii", "internal"], caller("alice", scopes))
	d.allow
	d.obligations.max_rows == 100
}

test_unknown_label_denied if {
	d := connector.decision with input as request("read", "orders", ["internal", "top-secret"], caller("alice", ["connector:read:orders"]))
	not d.allow
	some r in d.reasons
	startswith(r, "dataset 'orders' carries unknown label 'top-secret'; unknown labels are denied (known: ")
}

test_unlabelled_dataset_denied if {
	d := connector.decision with input as request("read", "scratch", [], caller("alice", ["connector:read:scratch"]))
	not d.allow
	"dataset 'scratch' has no labels; label it (catalog table or connector config) before it can be read" in d.reasons
}

test_unverified_caller_denied if {
	subject := object.union(caller("alice", ["connector:read:orders"]), {"verified": false})
	d := connector.decision with input as request("read", "orders", ["public"], subject)
	not d.allow
	"the caller's token was not verified; present a short-lived token issued by the gateway" in d.reasons
}

test_unknown_subject_has_no_clearance if {
	d := connector.decision with input as request("read", "ledger", ["financial"], caller("svc", ["connector:read:ledger"]))
	not d.allow
	d.reasons == {"label 'financial' on dataset 'ledger' needs clearance 2; caller 'svc' has 0"}
}

test_forbidden_label if {
	d := connector.decision with input as request("read", "genomes", ["secure-compute"], caller("alice", ["connector:read:genomes"]))
	not d.allow
	"datasets labelled 'secure-compute' are processed only by attested enclave jobs, never read through a connector" in d.reasons
}

test_other_tenant_denied if {
	subject := object.union(caller("alice", ["connector:read:orders"]), {"tenant": "globex"})
	d := connector.decision with input as request("read", "orders", ["public"], subject)
	not d.allow
	d.reasons == {"dataset 'orders' belongs to tenant 'acme'; the caller is in tenant 'globex'"}
}

test_unknown_operation if {
	d := connector.decision with input as request("delete", "orders", ["public"], caller("alice", ["connector:read:orders"]))
	not d.allow
	"operation 'delete' is not supported (supported: query, read)" in d.reasons
}
