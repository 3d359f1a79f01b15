package council.authz_test

import rego.v1

import data.council.authz

good_device := {"posture": {"fresh": true, "disk_encrypted": true, "firewall_on": true, "os_patched": true}}

test_analyst_reads_own_tenant if {
	d := authz.decision with input as {
		"subject": {"id": "bob"},
		"action": "read",
		"resource": {"type": "dataset", "tenant": "acme"},
		"context": {"ip": "10.1.2.3", "feature": "datasets"},
	}
	d.allow
	d.reasons == set()
}

test_cross_tenant_denied_with_reason if {
	d := authz.decision with input as {
		"subject": {"id": "bob"},
		"action": "read",
		"resource": {"type": "dataset", "tenant": "globex"},
		"context": {"ip": "10.1.2.3"},
	}
	not d.allow
	"subject belongs to tenant 'acme', resource to tenant 'globex'" in d.reasons
}

test_unknown_user if {
	d := authz.decision with input as {
		"subject": {"id": "mallory"},
		"action": "read",
		"resource": {"type": "dataset", "tenant": "acme"},
		"context": {"ip": "10.1.2.3"},
	}
	not d.allow
	"subject 'mallory' is not a known user" in d.reasons
}

test_high_risk_needs_compliant_device if {
	d := authz.decision with input as {
		"subject": {"id": "alice", "device": {"posture": {"disk_encrypted": true}}},
		"action": "write",
		"resource": {"type": "quota", "tenant": "acme"},
		"context": {"ip": "10.0.0.1"},
	}
	not d.allow
	"high-risk action 'write' needs a compliant device (failed: firewall_on, fresh, os_patched)" in d.reasons
	d.obligations.record_session
}

test_admin_write_with_good_device if {
	d := authz.decision with input as {
		"subject": {"id": "alice", "device": good_device},
		"action": "write",
		"resource": {"type": "quota", "tenant": "acme"},
		"context": {"ip": "10.0.0.1"},
	}
	d.allow
}

test_network_and_label_reasons if {
	d := authz.decision with input as {
		"subject": {"id": "bob"},
		"action": "read",
		"resource": {"type": "dataset", "tenant": "acme", "labels": ["pii"]},
		"context": {"ip": "8.8.8.8"},
	}
	not d.allow
	"label 'pii' needs clearance 2, subject has 1" in d.reasons
	"source address 8.8.8.8 is outside the tenant's networks (10.0.0.0/8, 192.168.0.0/16)" in d.reasons
}

test_edition_feature_gate if {
	d := authz.decision with input as {
		"subject": {"id": "carol"},
		"action": "sync",
		"resource": {"type": "connector", "tenant": "globex"},
		"context": {"ip": "1.2.3.4", "feature": "enclave"},
	}
	not d.allow
	"feature 'enclave' is not part of the team edition" in d.reasons
}
