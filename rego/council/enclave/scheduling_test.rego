package council.enclave.scheduling_test

import rego.v1

import data.council.enclave.scheduling

executors := [
	{"name": "enclave", "kind": "enclave", "tee_class": "software-tpm", "hardware": false},
	{"name": "plain", "kind": "plain", "tee_class": "none", "hardware": false},
]

ds(id, level) := {"id": id, "labels": {"secure-compute": level}}

req(datasets) := {"job": {"id": "j1", "transform": "embeddings"}, "datasets": datasets, "executors": executors}

test_required_goes_to_enclave if {
	d := scheduling.decision with input as req([ds("a", "required")])
	d.allow
	d.obligations.executor == "enclave"
	d.obligations.attestation == "required"
	d.obligations.secure_compute == "required"
}

test_none_goes_to_plain if {
	d := scheduling.decision with input as req([ds("a", "none")])
	d.allow
	d.obligations.executor == "plain"
	d.obligations.attestation == "none"
}

test_mixed_takes_strictest if {
	d := scheduling.decision with input as req([ds("a", "none"), ds("b", "required")])
	d.allow
	d.obligations.executor == "enclave"
	d.obligations.secure_compute == "required"
}

test_unlabelled_denied if {
	d := scheduling.decision with input as req([{"id": "a", "labels": {}}, ds("b", "none")])
	not d.allow
	"dataset a is unlabelled: it needs a secure-compute label before any job may read it" in d.reasons
	d.obligations == {}
}

test_unknown_level_denied if {
	d := scheduling.decision with input as req([ds("a", "maybe")])
	not d.allow
	"dataset a has an unknown secure-compute label \"maybe\" (known: hardware, none, required)" in d.reasons
}

test_unknown_label_key_denied if {
	d := scheduling.decision with input as req([{"id": "a", "labels": {"secure-compute": "none", "colour": "red"}}])
	not d.allow
	"dataset a carries an unknown label \"colour\" (known: secure-compute)" in d.reasons
}

test_hardware_refused_without_hardware_executor if {
	d := scheduling.decision with input as req([ds("a", "required"), ds("b", "hardware")])
	not d.allow
	"dataset b requires a hardware TEE (secure-compute: hardware) and no hardware enclave executor is available (enclave executors: enclave/software-tpm)" in d.reasons
}

test_hardware_runs_on_hardware_executor if {
	hw := array.concat(executors, [{"name": "snp-1", "kind": "enclave", "tee_class": "sev-snp", "hardware": true}])
	d := scheduling.decision with input as {"job": {"id": "j1", "transform": "embeddings"}, "datasets": [ds("b", "hardware")], "executors": hw}
	d.allow
	d.obligations.executor == "snp-1"
	d.obligations.hardware
}

test_required_never_plain_even_without_enclave if {
	d := scheduling.decision with input as {"job": {"id": "j1", "transform": "embeddings"}, "datasets": [ds("a", "required")], "executors": [executors[1]]}
	not d.allow
	"no enclave executor is available for secure-compute: required" in d.reasons
}

test_unknown_transform_denied if {
	d := scheduling.decision with input as {"job": {"id": "j1", "transform": "mine-bitcoin"}, "datasets": [ds("a", "none")], "executors": executors}
	not d.allow
	"transform \"mine-bitcoin\" is not an enclave transform (known: embeddings, entity-resolution)" in d.reasons
}

test_no_datasets_denied if {
	d := scheduling.decision with input as req([])
	not d.allow
	"a job must read at least one dataset" in d.reasons
}

test_obligations_carry_platform_cache if {
	d := scheduling.decision with input as req([ds("a", "required")])
	d.obligations.platform_cache_seconds == data.council.enclave.platform_cache_seconds
	d.obligations.hardware == false
}
