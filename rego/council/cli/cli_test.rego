package council.cli_test

import rego.v1

import data.council.cli

now := time.now_ns() / 1000000000

good_posture := {
	"fresh": true,
	"compliant": true,
	"disk_encrypted": true,
	"firewall_on": true,
	"os_patched": true,
	"kernel_supported": true,
	"screen_locked": true,
	"failed": [],
	"reasons": [],
}

good_device := {"id": "laptop-1", "source": "gateway", "posture": good_posture}

token(scope, verified) := {
	"present": true,
	"verified": verified,
	"claims": {"sub": "alice", "tenant": "acme", "scope": scope, "iat": now - 10, "exp": now + 290, "jti": "j1"},
}

test_diagnostics_with_scope_allowed if {
	d := cli.decision with input as {"feature": "exec:diagnostics", "argv": ["uptime"], "token": token("cli:exec", false)}
	d.allow
	d.reasons == set()
	d.obligations == {}
}

test_missing_token_named if {
	d := cli.decision with input as {"feature": "exec:diagnostics", "argv": ["uptime"]}
	not d.allow
	"feature 'exec:diagnostics' needs a token with scope(s) cli:exec; none was given (--token or --token-file)" in d.reasons
}

test_missing_scope_named if {
	d := cli.decision with input as {"feature": "exec:diagnostics", "token": token("webhook:send", true)}
	not d.allow
	"the token lacks scope(s) cli:exec needed by feature 'exec:diagnostics' (it carries: webhook:send)" in d.reasons
}

test_unknown_feature if {
	d := cli.decision with input as {"feature": "exec:everything", "token": token("cli:exec", true)}
	not d.allow
	some r in d.reasons
	startswith(r, "'exec:everything' is not a known CLI feature (known: admin:ca, ")
}

test_expired_token if {
	t := json.patch(token("cli:exec", false), [{"op": "replace", "path": "/claims/exp", "value": now - 100}])
	d := cli.decision with input as {"feature": "exec:diagnostics", "token": t}
	not d.allow
	some r in d.reasons
	startswith(r, "the token expired ")
}

test_admin_allowed_with_verified_token_and_good_posture if {
	d := cli.decision with input as {
		"feature": "admin:quota",
		"token": token("admin:quota:write", true),
		"device": good_device,
	}
	d.allow
	d.obligations == {"record_session": true}
}

test_admin_not_high_risk_has_no_recording if {
	d := cli.decision with input as {
		"feature": "admin:decisions",
		"token": token("admin:decisions:read", true),
		"device": good_device,
	}
	d.allow
	d.obligations == {}
}

test_admin_unverified_token_denied if {
	t := object.union(token("admin:quota:write", false), {"error": "no JWKS given"})
	d := cli.decision with input as {"feature": "admin:quota", "token": t, "device": good_device}
	not d.allow
	"admin feature 'admin:quota' needs a token verified against the gateway's keys; this one was not verified (no JWKS given)" in d.reasons
}

test_admin_long_lived_token_denied if {
	t := json.patch(token("admin:quota:write", true), [{"op": "replace", "path": "/claims/exp", "value": now + 86400}])
	d := cli.decision with input as {"feature": "admin:quota", "token": t, "device": good_device}
	not d.allow
	"admin feature 'admin:quota' needs a short-lived token (at most 900 s); this one lives 86410 s" in d.reasons
}

test_admin_without_device_denied if {
	d := cli.decision with input as {"feature": "admin:quota", "token": token("admin:quota:write", true)}
	not d.allow
	"feature 'admin:quota' needs a fresh, compliant device posture; no device was named (--device-id with --gateway)" in d.reasons
}

test_admin_self_reported_posture_denied if {
	device := object.union(good_device, {"source": "file"})
	d := cli.decision with input as {"feature": "admin:quota", "token": token("admin:quota:write", true), "device": device}
	not d.allow
	"feature 'admin:quota' needs the device posture as the gateway recorded it; a posture from 'file' is self-reported" in d.reasons
}

test_admin_failed_checks_named if {
	posture := object.union(good_posture, {
		"fresh": false,
		"compliant": false,
		"disk_encrypted": false,
		"reasons": ["disk_encrypted: root device /dev/sda1 is not on dm-crypt", "fresh: the latest report is 900 s old"],
	})
	device := object.union(good_device, {"posture": posture})
	d := cli.decision with input as {"feature": "admin:quota", "token": token("admin:quota:write", true), "device": device}
	not d.allow
	"device posture check 'disk_encrypted' failed: root device /dev/sda1 is not on dm-crypt" in d.reasons
	"device posture check 'fresh' failed: the latest report is 900 s old" in d.reasons
}

test_missing_check_is_a_failure if {
	device := json.patch(good_device, [{"op": "remove", "path": "/posture/firewall_on"}])
	d := cli.decision with input as {"feature": "admin:quota", "token": token("admin:quota:write", true), "device": device}
	not d.allow
	"device posture check 'firewall_on' failed: the device reported no passing result" in d.reasons
}

test_posture_error_reported if {
	device := {"id": "laptop-9", "source": "gateway", "error": "device 'laptop-9' is not enrolled"}
	d := cli.decision with input as {"feature": "admin:quota", "token": token("admin:quota:write", true), "device": device}
	not d.allow
	"device 'laptop-9' posture is unavailable: device 'laptop-9' is not enrolled" in d.reasons
}

test_token_bound_to_other_device if {
	t := json.patch(token("admin:quota:write", true), [{"op": "add", "path": "/claims/device_id", "value": "laptop-2"}])
	d := cli.decision with input as {"feature": "admin:quota", "token": t, "device": good_device}
	not d.allow
	"the token is bound to device 'laptop-2' but the posture presented is for device 'laptop-1'" in d.reasons
}

test_high_risk_exec_feature_records if {
	d := cli.decision with input as {
		"feature": "exec:maintenance",
		"token": token("cli:exec cli:maintenance", false),
		"device": good_device,
	}
	d.allow
	d.obligations.record_session
}
