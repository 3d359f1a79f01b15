# METADATA
# title: Council enclave scheduling
# description: |
#   Decides where a job may run, from the labels of the datasets it reads. The enclave
#   scheduler PEP (pep_sidecars/scheduler.py) asks before every job and fails closed.
#
#   Every dataset must carry a known `secure-compute` label and no unknown label; a job over
#   several datasets takes the strictest level among them. `none` may run on a plain
#   executor; `required` runs only on an enclave executor, and only after an affirming EAR
#   (the obligations say so); `hardware` needs an enclave executor with a hardware TEE, and
#   is refused with that reason where none is available.
#
#   Input (built by the scheduler):
#     job: {id, transform}
#     datasets: [{id, labels: {name: value}}]
#     executors: [{name, kind: enclave|plain, tee_class, hardware}]
package council.enclave.scheduling

import rego.v1

levels := data.council.enclave.labels["secure-compute"]

default allow := false

allow if count(reasons) == 0

# METADATA
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": reasons,
	"obligations": obligations,
}

# --- the strictest level --------------------------------------------------------------------

level_of(dataset) := object.get(dataset, ["labels", "secure-compute"], "")

known_levels := {level_of(d) | some d in input.datasets; levels[level_of(d)]}

strictest_rank := max({levels[l].rank | some l in known_levels})

strictest := l if {
	some l in known_levels
	levels[l].rank == strictest_rank
}

requirement := levels[strictest]

# --- executor choice --------------------------------------------------------------------------

candidates contains e.name if {
	some e in input.executors
	e.kind == requirement.executor_kind
	hardware_ok(e)
}

# A plain-level job may also run in an enclave, but only when no plain executor exists.
candidates contains e.name if {
	requirement.executor_kind == "plain"
	not plain_available
	some e in input.executors
	e.kind == "enclave"
}

plain_available if {
	some e in input.executors
	e.kind == "plain"
}

hardware_ok(_) if not requirement.hardware

hardware_ok(e) if {
	requirement.hardware
	e.hardware == true
}

chosen := sort(candidates)[0]

chosen_executor := e if {
	some e in input.executors
	e.name == chosen
}

default obligations := {}

obligations := {
	"executor": chosen,
	"executor_kind": chosen_executor.kind,
	"secure_compute": strictest,
	"attestation": attestation,
	"hardware": requirement.hardware,
	"platform_cache_seconds": data.council.enclave.platform_cache_seconds,
} if {
	allow
	chosen_executor
}

default attestation := "none"

attestation := "required" if chosen_executor.kind == "enclave"

# --- reasons ----------------------------------------------------------------------------------

reasons contains "a job must read at least one dataset" if count(object.get(input, "datasets", [])) == 0

reasons contains msg if {
	not object.get(input, ["job", "transform"], "") in data.council.enclave.transforms
	known := concat(", ", sort(data.council.enclave.transforms))
	msg := sprintf("transform %q is not an enclave transform (known: %s)", [object.get(input, ["job", "transform"], ""), known])
}

reasons contains msg if {
	some d in input.datasets
	count(object.get(d, "labels", {})) == 0
	msg := sprintf("dataset %s is unlabelled: it needs a secure-compute label before any job may read it", [d.id])
}

reasons contains msg if {
	some d in input.datasets
	count(object.get(d, "labels", {})) > 0
	level_of(d) == ""
	msg := sprintf("dataset %s has no secure-compute label", [d.id])
}

reasons contains msg if {
	some d in input.datasets
	level := level_of(d)
	level != ""
	not levels[level]
	known := concat(", ", sort(object.keys(levels)))
	msg := sprintf("dataset %s has an unknown secure-compute label %q (known: %s)", [d.id, level, known])
}

reasons contains msg if {
	some d in input.datasets
	some name, _ in object.get(d, "labels", {})
	not data.council.enclave.labels[name]
	known := concat(", ", sort(object.keys(data.council.enclave.labels)))
	msg := sprintf("dataset %s carries an unknown label %q (known: %s)", [d.id, name, known])
}

reasons contains msg if {
	requirement.hardware
	count(candidates) == 0
	strict := [d.id | some d in input.datasets; level_of(d) == strictest]
	available := concat(", ", sort([sprintf("%s/%s", [e.name, object.get(e, "tee_class", "none")]) | some e in input.executors; e.kind == "enclave"]))
	msg := sprintf("dataset %s requires a hardware TEE (secure-compute: %s) and no hardware enclave executor is available (enclave executors: %s)", [concat(", ", sort(strict)), strictest, none_if_empty(available)])
}

reasons contains msg if {
	requirement
	not requirement.hardware
	count(candidates) == 0
	msg := sprintf("no %s executor is available for secure-compute: %s", [requirement.executor_kind, strictest])
}

none_if_empty(s) := "none" if s == ""

none_if_empty(s) := s if s != ""
