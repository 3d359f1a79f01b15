# METADATA
# title: Council connector enforcement point
# description: |
#   Decides whether a caller may run an operation (read, query) on a dataset served by a
#   data connector (SQLite tables, HTTP endpoints). Every operation needs the scope
#   connector:read:<dataset> (query also connector:query:<dataset>); each label on the
#   dataset adds a clearance level and possibly scopes (pii needs connector:read:pii).
#   A dataset without labels, or with a label this policy does not know, is denied.
#   Obligations: max_rows caps what the enforcement point returns; cache_ttl_seconds lets
#   it reuse the decision.
#
#   Input (built by pep_sidecars/connectors.py):
#     operation: "read" | "query"
#     dataset:   {name, labels, tenant, connector, kind}
#     subject:   {id, tenant, scopes, verified}
package council.connector

import rego.v1

default allow := false

# METADATA
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": reasons,
	"obligations": obligations,
}

allow if {
	operation
	count(reasons) == 0
}

operation_name := object.get(input, "operation", "")

operation := data.council.connector.operations[operation_name]

dataset := object.get(input, "dataset", {})

dataset_name := object.get(dataset, "name", "")

dataset_labels := {label | some label in object.get(dataset, "labels", [])}

subject := object.get(input, "subject", {})

subject_id := object.get(subject, "id", "")

subject_scopes := {scope | some scope in object.get(subject, "scopes", [])}

clearance := object.get(data.council.connector.clearances, subject_id, 0)

reasons contains msg if {
	not subject.verified == true
	msg := "the caller's token was not verified; present a short-lived token issued by the gateway"
}

reasons contains msg if {
	not operation
	known := sort([name | some name, _ in data.council.connector.operations])
	msg := sprintf("operation '%s' is not supported (supported: %s)", [operation_name, concat(", ", known)])
}

reasons contains msg if {
	count(dataset_labels) == 0
	msg := sprintf(
		"dataset '%s' has no labels; label it (catalog table or connector config) before it can be read",
		[dataset_name],
	)
}

reasons contains msg if {
	some label in dataset_labels
	not data.council.connector.labels[label]
	known := sort([name | some name, _ in data.council.connector.labels])
	msg := sprintf(
		"dataset '%s' carries unknown label '%s'; unknown labels are denied (known: %s)",
		[dataset_name, label, concat(", ", known)],
	)
}

reasons contains msg if {
	some template in operation.scopes
	scope := replace(template, "{dataset}", dataset_name)
	not scope in subject_scopes
	msg := sprintf("operation '%s' on dataset '%s' needs scope '%s'", [operation_name, dataset_name, scope])
}

reasons contains msg if {
	some label in dataset_labels
	some scope in object.get(data.council.connector.labels[label], "scopes", [])
	not scope in subject_scopes
	msg := sprintf("label '%s' on dataset '%s' needs scope '%s'", [label, dataset_name, scope])
}

reasons contains msg if {
	some label in dataset_labels
	needed := object.get(data.council.connector.labels[label], "clearance", 0)
	needed > clearance
	msg := sprintf(
		"label '%s' on dataset '%s' needs clearance %d; caller '%s' has %d",
		[label, dataset_name, needed, subject_id, clearance],
	)
}

reasons contains msg if {
	some label in dataset_labels
	msg := data.council.connector.labels[label].forbidden
}

reasons contains msg if {
	owner := object.get(dataset, "tenant", "")
	owner != ""
	caller := object.get(subject, "tenant", "")
	caller != owner
	msg := sprintf("dataset '%s' belongs to tenant '%s'; the caller is in tenant '%s'", [dataset_name, owner, caller])
}

# --- obligations ----------------------------------------------------------------------

row_caps contains operation.max_rows

row_caps contains cap if {
	some label in dataset_labels
	cap := data.council.connector.labels[label].max_rows
}

obligations["max_rows"] := min(row_caps) if count(row_caps) > 0

obligations["cache_ttl_seconds"] := data.council.connector.cache_ttl_seconds
