package council.admin_test

import rego.v1

import data.council.admin

now := 1700000000

ops := "spiffe://council.test/cli/ops"

good_posture := {
	"fresh": true,
	"disk_encrypted": true,
	"firewall_on": true,
	"os_patched": true,
	"kernel_supported": true,
	"screen_locked": true,
	"compliant": true,
	"failed": [],
	"reasons": [],
	"age_seconds": 12,
}

call(method, tenant, request) := {
	"method": sprintf("/council.v1.Admin/%s", [method]),
	"token": {
		"iss": "council-gateway", "sub": ops, "aud": "council-admin", "tenant": tenant,
		"scope": "admin:quota:write admin:quota:read admin:apikey:write admin:keys:rotate",
		"iat": now - 10, "nbf": now - 10, "exp": now + 290, "jti": "j1",
		"device_id": "laptop-1", "verified": true,
	},
	"peer": {"spiffe_id": ops, "trust_domain": "council.test", "kind": "cli", "name": "ops"},
	"device": {"id": "laptop-1", "enrolled": true, "reported": true, "tenant": tenant, "posture": good_posture},
	"request": request,
}

set_quota := call("SetQuota", "council", {"tenant": "acme", "feature": "webhook"})

decide(doc) := d if {
	d := admin.decision with input as doc with time.now_ns as now * 1000000000
}

test_platform_operator_with_good_posture_sets_a_quota if {
	d := decide(set_quota)
	d.allow
	d.reasons == set()
}

test_missing_scope_is_named if {
	doc := json.patch(set_quota, [{"op": "replace", "path": "/token/scope", "value": "webhook:send"}])
	d := decide(doc)
	not d.allow
	d.reasons == {"the token lacks scope admin:quota:write, which /council.v1.Admin/SetQuota needs"}
}

test_unknown_method_is_denied if {
	d := decide(json.patch(set_quota, [{"op": "replace", "path": "/method", "value": "/council.v1.Admin/DropAll"}]))
	not d.allow
	"/council.v1.Admin/DropAll is not an admin method this policy knows" in d.reasons
}

test_unverified_long_lived_and_expired_tokens if {
	unverified := decide(json.remove(set_quota, ["/token/verified"]))
	"the gateway did not verify the token; admin calls take only verified short-lived tokens" in unverified.reasons

	long := decide(json.patch(set_quota, [{"op": "replace", "path": "/token/exp", "value": now + 86400}]))
	"the token lives 86410 s; admin calls take tokens living at most 900 s" in long.reasons

	expired := decide(json.patch(set_quota, [{"op": "replace", "path": "/token/exp", "value": now - 31}]))
	expired.reasons == {"the token has expired"}
	within_leeway := decide(json.patch(set_quota, [{"op": "replace", "path": "/token/exp", "value": now - 29}]))
	within_leeway.allow
}

test_token_of_one_identity_presented_by_another if {
	doc := json.patch(set_quota, [{"op": "replace", "path": "/peer/spiffe_id", "value": "spiffe://council.test/agent/x"}])
	d := decide(doc)
	d.reasons == {"the token was issued to spiffe://council.test/cli/ops but presented by spiffe://council.test/agent/x"}

	# An API key's token (a plain subject) may come over any certificate of the domain.
	api := decide(json.patch(doc, [{"op": "replace", "path": "/token/sub", "value": "user:alice"}]))
	api.allow

	no_peer := decide(json.remove(set_quota, ["/peer"]))
	"admin calls need an mTLS client certificate" in no_peer.reasons
}

test_no_device_or_unenrolled_device if {
	none := decide(json.patch(set_quota, [
		{"op": "remove", "path": "/token/device_id"},
		{"op": "replace", "path": "/device", "value": null},
	]))
	none.reasons == {"the token names no device; admin calls need an enrolled device with a fresh, compliant posture"}

	unknown := decide(json.patch(set_quota, [{"op": "replace", "path": "/device", "value": {
		"id": "laptop-1", "enrolled": false, "reported": false, "tenant": "",
		"posture": {"fresh": false, "reasons": ["fresh: device 'laptop-1' is not enrolled"]},
	}}]))
	unknown.reasons == {"device laptop-1 named by the token is not enrolled for posture reports"}
}

test_missing_report_is_one_freshness_reason if {
	d := decide(json.patch(set_quota, [
		{"op": "replace", "path": "/device/reported", "value": false},
		{"op": "replace", "path": "/device/posture", "value": {
			"fresh": false, "disk_encrypted": false,
			"reasons": ["disk_encrypted: no posture report received from device 'laptop-1'", "fresh: no posture report received from device 'laptop-1'"],
		}},
	]))
	d.reasons == {"device posture check fresh failed: no posture report received from device 'laptop-1'"}
}

test_each_failed_check_is_named_with_the_gateway_detail if {
	d := decide(json.patch(set_quota, [
		{"op": "replace", "path": "/device/posture/disk_encrypted", "value": false},
		{"op": "replace", "path": "/device/posture/fresh", "value": false},
		{"op": "remove", "path": "/device/posture/screen_locked"},
		{"op": "replace", "path": "/device/posture/reasons", "value": [
			"disk_encrypted: the root disk is not encrypted (CRYPT missing)",
			"fresh: latest report is 700 s old, more than the 600 s allowed",
		]},
	]))
	d.reasons == {
		"device posture check disk_encrypted failed: the root disk is not encrypted (CRYPT missing)",
		"device posture check fresh failed: latest report is 700 s old, more than the 600 s allowed",
		"device posture check screen_locked failed: the gateway gave no detail",
	}
}

test_admin_calls_want_a_younger_report if {
	d := decide(json.patch(set_quota, [{"op": "replace", "path": "/device/posture/age_seconds", "value": 400.4}]))
	d.reasons == {"device posture check fresh failed: the latest report is 400 s old; admin calls need one at most 300 s old"}
}

test_device_of_another_tenant if {
	doc := call("GetQuota", "acme", {"tenant": "acme", "feature": "webhook"})
	d := decide(json.patch(doc, [{"op": "replace", "path": "/device/tenant", "value": "globex"}]))
	d.reasons == {"device laptop-1 belongs to tenant 'globex', the token to tenant 'acme'"}
}

test_tenant_admins_act_on_their_own_tenant_only if {
	own := decide(call("GetQuota", "acme", {"tenant": "acme", "feature": "webhook"}))
	own.allow

	other := decide(call("GetQuota", "acme", {"tenant": "globex", "feature": "webhook"}))
	other.reasons == {"a token of tenant 'acme' may not administer tenant 'globex'"}

	all_tenants := decide(call("ListDevices", "acme", {"tenant": ""}))
	"a token of tenant 'acme' may not administer every tenant" in all_tenants.reasons

	platform := decide(call("GetQuota", "council", {"tenant": "globex", "feature": "webhook"}))
	platform.allow
}

test_platform_operations_belong_to_platform_tenants if {
	d := decide(call("SetQuota", "acme", {"tenant": "acme", "feature": "webhook"}))
	d.reasons == {"/council.v1.Admin/SetQuota is a platform operation; tenant 'acme' is not a platform tenant"}
	rotate := decide(call("RotateSigningKey", "acme", {}))
	"/council.v1.Admin/RotateSigningKey is a platform operation; tenant 'acme' is not a platform tenant" in rotate.reasons
}

test_tenant_admins_cannot_grant_admin_scopes if {
	ok := decide(call("CreateApiKey", "acme", {"tenant": "acme", "scopes": ["webhook:send", "connector:read:*"]}))
	ok.allow

	d := decide(call("CreateApiKey", "acme", {"tenant": "acme", "scopes": ["webhook:send", "admin:quota:write", "a*"]}))
	d.reasons == {
		"only platform tenants may grant admin scopes, and admin:quota:write covers admin:*",
		"only platform tenants may grant admin scopes, and a* covers admin:*",
	}

	platform := decide(call("CreateApiKey", "council", {"tenant": "acme", "scopes": ["*"]}))
	platform.allow
}
