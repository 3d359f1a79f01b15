# METADATA
# title: Council enclave appraisal
# description: |
#   Appraises evidence that a verifier plugin has already verified (signature, chain,
#   freshness, report-data binding, reference values) and turns it into the EAR verdict of
#   one submodule: a status (affirming, warning, contraindicated, none), an AR4SI
#   trustworthiness vector and the appraisal policy id. The enclave verifier signs the result.
#
#   A software TPM with a bubblewrap sandbox is isolated, not encrypted: it may be affirming
#   only under an appraisal policy that allows tee_class software-tpm and tolerates the
#   warning-tier runtime-opaque and storage-opaque claims that say so. Datasets that demand a
#   hardware TEE are refused on it. The sample verifier's evidence is refused by every shipped
#   policy.
#
#   Input (built by gateway/enclave_verifier.py):
#     policy_id               the appraisal policy the verifier is configured with
#     claims                  VerifiedEvidence.to_claims(): verifier, tee_class, hardware,
#                             measurement, registers, tcb, policy, platform, signer, ...
#     job: {id, manifest_digest, transform, datasets: [{id, labels}]}
package council.enclave.appraisal

import rego.v1

policy := data.council.enclave.appraisal_policies[input.policy_id]

claims := input.claims

tee_class := object.get(claims, "tee_class", "")

tee := data.council.enclave.tee_classes[tee_class]

default allow := false

allow if status == "affirming"

# METADATA
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": reasons,
	"status": status,
	"trustworthiness_vector": vector,
	"policy_id": sprintf("council/enclave/appraisal/%s", [input.policy_id]),
	"tee_class": tee_class,
}

# --- status -------------------------------------------------------------------------------

default status := "none"

status := "contraindicated" if {
	policy
	count(reasons) > 0
}

status := "warning" if {
	policy
	count(reasons) == 0
	count(untolerated_warnings) > 0
}

status := "affirming" if {
	policy
	count(reasons) == 0
	count(untolerated_warnings) == 0
}

# Warning-tier claims (32..95) the policy has not said it accepts.
untolerated_warnings contains name if {
	some name, value in vector
	value >= 32
	value < 96
	not name in policy.tolerated_warnings
}

# --- trustworthiness vector -----------------------------------------------------------------

default base_vector := {}

base_vector := tee.vector

vector := object.union(base_vector, {"executables": executables})

# Approved runtime (2): the plugin matched every measured event against signed reference
# values and the launch measured everything the policy requires. Unrecognized runtime (33)
# when a required measurement is missing; no claim (0) for TEEs without measured launch.
default executables := 0

executables := 2 if {
	tee.measured_launch
	claims.policy.reference_manifest
	count(missing_measurements) == 0
}

executables := 33 if {
	tee.measured_launch
	count(missing_measurements) > 0
}

measured_types := {kind | some kind, _ in object.get(claims, ["platform", "measurements"], {})}

missing_measurements := {kind | some kind in policy.required_measurements; not kind in measured_types}

# --- reasons ------------------------------------------------------------------------------

reasons contains msg if {
	not policy
	defined := concat(", ", sort(object.keys(data.council.enclave.appraisal_policies)))
	msg := sprintf("appraisal policy %q is not defined (defined: %s)", [input.policy_id, defined])
}

reasons contains msg if {
	not tee
	msg := sprintf("tee class %q is not known to the appraisal policies", [tee_class])
}

reasons contains msg if {
	tee
	not tee_class in policy.allowed_tee_classes
	allowed := concat(", ", sort(policy.allowed_tee_classes))
	msg := sprintf("appraisal policy %s does not allow tee class %s (allowed: %s)", [input.policy_id, tee_class, allowed])
}

reasons contains msg if {
	object.get(claims, ["platform", "test_only"], false) == true
	not policy.allow_test_evidence
	msg := sprintf("evidence from the %s verifier is for tests only", [object.get(claims, "verifier", "")])
}

reasons contains msg if {
	some name, value in vector
	value >= 96
	msg := sprintf("trustworthiness claim %s is in the contraindicated tier (%d)", [name, value])
}

reasons contains msg if {
	tee.measured_launch
	count(missing_measurements) > 0
	msg := sprintf("the launch did not measure %s", [concat(", ", sort(missing_measurements))])
}

reasons contains msg if {
	tee.measured_launch
	some digest in object.get(claims, ["platform", "measurements", "job-manifest"], [])
	sprintf("sha256:%s", [digest]) != input.job.manifest_digest
	msg := "the measured job manifest is not the manifest of this job"
}

reasons contains msg if {
	object.get(claims, ["policy", "debug"], false) == true
	not policy.allow_debug
	msg := sprintf("the %s guest is debuggable, which appraisal policy %s refuses", [tee_class, input.policy_id])
}

reasons contains msg if {
	some dataset in input.job.datasets
	level := object.get(dataset, ["labels", "secure-compute"], "")
	data.council.enclave.labels["secure-compute"][level].hardware
	not claims.hardware
	msg := sprintf("dataset %s requires a hardware TEE (secure-compute: %s); tee class %s is %s", [dataset.id, level, tee_class, tee_description])
}

reasons contains msg if {
	some dataset in input.job.datasets
	level := object.get(dataset, ["labels", "secure-compute"], "")
	not data.council.enclave.labels["secure-compute"][level]
	msg := sprintf("dataset %s has no known secure-compute label (got %q)", [dataset.id, level])
}

default tee_description := "unknown"

tee_description := tee.description
