# METADATA
# title: Council admin API authorization
# description: |
#   Decides every call of council.v1.Admin after the gateway's token guard has verified
#   the caller's short-lived, one-time token. The gateway sends
#     method   the full gRPC method, e.g. "/council.v1.Admin/SetQuota";
#     token    the verified claims (iss, sub, aud, tenant, scope, iat, nbf, exp, jti,
#              device_id) plus "verified": true;
#     peer     the caller's certificate identity (spiffe_id, trust_domain, kind, name);
#     device   the posture of the token's device (id, enrolled, reported, tenant, posture),
#              null when the token names no device;
#     request  the call's fields (tenant, feature, scopes, ...).
#   A call is allowed only with the method's scope, a short-lived unexpired token presented
#   by the identity it was issued to, a fresh and compliant posture of a device of the
#   token's tenant, and a tenant match (platform tenants may act on every tenant; platform
#   operations are theirs alone). Each failed condition is one reason.
package council.admin

import rego.v1

default allow := false

# METADATA
# entrypoint: true
decision := {"allow": allow, "reasons": reasons}

allow if {
	method
	count(reasons) == 0
}

method := data.council.admin.methods[input.method]

token := object.get(input, "token", {})

tenant := object.get(token, "tenant", "")

platform if tenant in data.council.admin.platform_tenants

token_scopes contains scope if {
	some scope in split(object.get(token, "scope", ""), " ")
	scope != ""
}

# --- method and scope ---------------------------------------------------------------------

reasons contains msg if {
	not method
	msg := sprintf("%v is not an admin method this policy knows", [input.method])
}

reasons contains msg if {
	method
	not method.scope in token_scopes
	msg := sprintf("the token lacks scope %s, which %s needs", [method.scope, input.method])
}

# --- the token ----------------------------------------------------------------------------

reasons contains "the gateway did not verify the token; admin calls take only verified short-lived tokens" if {
	not token.verified == true
}

reasons contains msg if {
	lifetime := token.exp - token.iat
	lifetime > data.council.admin.max_token_lifetime_seconds
	msg := sprintf(
		"the token lives %d s; admin calls take tokens living at most %d s",
		[lifetime, data.council.admin.max_token_lifetime_seconds],
	)
}

reasons contains "the token has expired" if {
	(token.exp + data.council.admin.token_leeway_seconds) * 1000000000 < time.now_ns()
}

# --- the caller's certificate -------------------------------------------------------------

peer_id := object.get(input, ["peer", "spiffe_id"], "")

reasons contains "admin calls need an mTLS client certificate" if peer_id == ""

# A token exchanged for a certificate identity is that identity's alone.
reasons contains msg if {
	startswith(object.get(token, "sub", ""), "spiffe://")
	peer_id != ""
	token.sub != peer_id
	msg := sprintf("the token was issued to %s but presented by %s", [token.sub, peer_id])
}

# --- device posture -----------------------------------------------------------------------

device_id := object.get(token, "device_id", "")

device := input.device if {
	is_object(input.device)
} else := {}

posture := object.get(device, "posture", {})

reasons contains "the token names no device; admin calls need an enrolled device with a fresh, compliant posture" if {
	device_id == ""
}

reasons contains msg if {
	device_id != ""
	not device.enrolled == true
	msg := sprintf("device %s named by the token is not enrolled for posture reports", [device_id])
}

reasons contains msg if {
	device.enrolled == true
	device.tenant != tenant
	msg := sprintf("device %s belongs to tenant '%s', the token to tenant '%s'", [device_id, device.tenant, tenant])
}

# Before the first report only freshness is judged: one reason, not one per check.
failed_checks contains "fresh" if {
	device.enrolled == true
	not posture.fresh == true
}

failed_checks contains check if {
	device.reported == true
	some check in data.council.admin.posture_checks
	not posture[check] == true
}

reasons contains msg if {
	some check in failed_checks
	msg := sprintf("device posture check %s failed: %s", [check, posture_detail(check)])
}

# The gateway's own explanation of a failed check ("<check>: <why>").
posture_detail(check) := details[0] if {
	prefix := concat("", [check, ": "])
	details := [trim_prefix(r, prefix) | some r in object.get(posture, "reasons", []); startswith(r, prefix)]
	count(details) > 0
} else := "the gateway gave no detail"

# Admin calls want a younger report than the gateway's general freshness limit.
reasons contains msg if {
	posture.fresh == true
	posture.age_seconds > data.council.admin.max_posture_age_seconds
	msg := sprintf(
		"device posture check fresh failed: the latest report is %d s old; admin calls need one at most %d s old",
		[round(posture.age_seconds), data.council.admin.max_posture_age_seconds],
	)
}

# --- tenants ------------------------------------------------------------------------------

target := object.get(input, ["request", "tenant"], "")

reasons contains msg if {
	method.scoped_to == "tenant"
	not platform
	target != tenant
	msg := sprintf("a token of tenant '%s' may not administer %s", [tenant, tenant_name(target)])
}

tenant_name("") := "every tenant"

tenant_name(name) := sprintf("tenant '%s'", [name]) if name != ""

reasons contains msg if {
	method.scoped_to == "platform"
	not platform
	msg := sprintf(
		"%s is a platform operation; tenant '%s' is not a platform tenant",
		[input.method, tenant],
	)
}

# A tenant's admins may hand out their tenant's ordinary scopes, never admin ones: otherwise
# one admin scope would mint every other.
reasons contains msg if {
	method.grants_scopes
	not platform
	some pattern in object.get(input, ["request", "scopes"], [])
	covers_admin(pattern)
	msg := sprintf("only platform tenants may grant admin scopes, and %s covers admin:*", [pattern])
}

covers_admin(pattern) if startswith(pattern, "admin:")

covers_admin(pattern) if {
	endswith(pattern, "*")
	startswith("admin:", trim_suffix(pattern, "*"))
}
