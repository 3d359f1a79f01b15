package council.enclave.appraisal_test

import rego.v1

import data.council.enclave.appraisal

manifest_hex := "aa00000000000000000000000000000000000000000000000000000000000000"

tpm_claims := {
	"verifier": "tpm",
	"tee_class": "software-tpm",
	"hardware": false,
	"policy": {"reference_manifest": {"provider": "council-ci", "digest": "sha256:00"}},
	"platform": {
		"encrypted_memory": false,
		"measurements": {
			"transform-code": ["11"],
			"sandbox-profile": ["22"],
			"job-manifest": [manifest_hex],
		},
	},
}

job(level) := {
	"id": "job-1",
	"manifest_digest": sprintf("sha256:%s", [manifest_hex]),
	"transform": "embeddings",
	"datasets": [{"id": "ds-1", "labels": {"secure-compute": level}}],
}

tpm_input(policy_id, level) := {"policy_id": policy_id, "claims": tpm_claims, "job": job(level)}

snp_claims := {
	"verifier": "snp",
	"tee_class": "sev-snp",
	"hardware": true,
	"policy": {"debug": false},
	"platform": {},
}

test_software_tpm_affirming_under_software_tpm_policy if {
	d := appraisal.decision with input as tpm_input("software-tpm", "required")
	d.allow
	d.status == "affirming"
	d.reasons == set()
	d.policy_id == "council/enclave/appraisal/software-tpm"
	d.trustworthiness_vector["runtime-opaque"] == 32
	d.trustworthiness_vector["storage-opaque"] == 32
	d.trustworthiness_vector.executables == 2
	d.trustworthiness_vector.hardware == 0
}

test_software_tpm_refused_by_default_policy if {
	d := appraisal.decision with input as tpm_input("default", "required")
	not d.allow
	d.status == "contraindicated"
	"appraisal policy default does not allow tee class software-tpm (allowed: sev-snp, tdx)" in d.reasons
}

test_hardware_dataset_refused_on_software_tpm if {
	d := appraisal.decision with input as tpm_input("software-tpm", "hardware")
	not d.allow
	d.status == "contraindicated"
	some r in d.reasons
	startswith(r, "dataset ds-1 requires a hardware TEE (secure-compute: hardware); tee class software-tpm is")
	contains(r, "isolated, not encrypted")
}

test_sample_refused_by_default_policy if {
	sample := {
		"verifier": "sample",
		"tee_class": "sample",
		"hardware": false,
		"platform": {"test_only": true},
		"policy": {},
	}
	d := appraisal.decision with input as {"policy_id": "default", "claims": sample, "job": job("required")}
	not d.allow
	d.status == "contraindicated"
	"appraisal policy default does not allow tee class sample (allowed: sev-snp, tdx)" in d.reasons
	"evidence from the sample verifier is for tests only" in d.reasons
}

test_sample_refused_by_software_tpm_policy if {
	sample := {"verifier": "sample", "tee_class": "sample", "hardware": false, "platform": {"test_only": true}}
	d := appraisal.decision with input as {"policy_id": "software-tpm", "claims": sample, "job": job("required")}
	not d.allow
}

test_unknown_policy_is_none if {
	d := appraisal.decision with input as tpm_input("lenient", "required")
	not d.allow
	d.status == "none"
	"appraisal policy \"lenient\" is not defined (defined: default, software-tpm)" in d.reasons
}

test_missing_measurement_unrecognized_runtime if {
	claims := json.remove(tpm_claims, ["platform/measurements/sandbox-profile"])
	d := appraisal.decision with input as {"policy_id": "software-tpm", "claims": claims, "job": job("required")}
	not d.allow
	d.trustworthiness_vector.executables == 33
	"the launch did not measure sandbox-profile" in d.reasons
}

test_other_manifest_refused if {
	claims := json.patch(tpm_claims, [{"op": "replace", "path": "/platform/measurements/job-manifest", "value": ["bb"]}])
	d := appraisal.decision with input as {"policy_id": "software-tpm", "claims": claims, "job": job("required")}
	not d.allow
	"the measured job manifest is not the manifest of this job" in d.reasons
}

test_unlabelled_dataset_refused if {
	d := appraisal.decision with input as {"policy_id": "software-tpm", "claims": tpm_claims, "job": job("")}
	not d.allow
	"dataset ds-1 has no known secure-compute label (got \"\")" in d.reasons
}

test_snp_affirming_under_default_for_hardware_dataset if {
	d := appraisal.decision with input as {"policy_id": "default", "claims": snp_claims, "job": job("hardware")}
	d.allow
	d.trustworthiness_vector["runtime-opaque"] == 2
	d.trustworthiness_vector.hardware == 2
	d.trustworthiness_vector.executables == 0
}

test_debug_guest_refused if {
	claims := json.patch(snp_claims, [{"op": "replace", "path": "/policy/debug", "value": true}])
	d := appraisal.decision with input as {"policy_id": "default", "claims": claims, "job": job("required")}
	not d.allow
	"the sev-snp guest is debuggable, which appraisal policy default refuses" in d.reasons
}

test_untolerated_warning_is_warning if {
	strict := {"strict": {
		"allowed_tee_classes": ["software-tpm"],
		"tolerated_warnings": [],
		"required_measurements": [],
		"allow_debug": false,
		"allow_test_evidence": false,
	}}
	d := appraisal.decision with input as tpm_input("strict", "required")
		with data.council.enclave.appraisal_policies as strict
	not d.allow
	d.status == "warning"
	d.reasons == set()
}

test_contraindicated_claim_refused if {
	visible := json.patch(data.council.enclave.tee_classes, [{"op": "replace", "path": "/software-tpm/vector/runtime-opaque", "value": 96}])
	d := appraisal.decision with input as tpm_input("software-tpm", "required")
		with data.council.enclave.tee_classes as visible
	not d.allow
	d.status == "contraindicated"
	"trustworthiness claim runtime-opaque is in the contraindicated tier (96)" in d.reasons
}
