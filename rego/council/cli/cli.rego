# METADATA
# title: Council CLI enforcement point
# description: |
#   Decides whether `council exec --feature F -- <command>` (and the `council` admin
#   sub-commands) may run. Each feature names the token scopes it needs (data.json);
#   admin features also need a token verified against the gateway's keys that lives at
#   most max_admin_token_seconds, and a fresh, compliant device posture obtained from the
#   gateway. High-risk features carry the obligation to record the session.
#
#   Input (built by pep_sidecars/cli_pep.py):
#     feature, command, argv, user, host
#     token:  {present, verified, error, claims: {sub, tenant, scope, iat, exp, jti, device_id}}
#     device: {id, source: "gateway" | "file", error, posture: PostureStatus.to_policy_input()}
package council.cli

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
	feature
	count(reasons) == 0
}

known_features := data.council.cli.features

feature_name := object.get(input, "feature", "")

feature := known_features[feature_name]

is_admin if feature.admin == true

needs_posture if is_admin

needs_posture if feature.posture == true

high_risk if feature.high_risk == true

# --- the token ------------------------------------------------------------------------

token := object.get(input, "token", {})

claims := object.get(token, "claims", {})

token_present if token.present == true

token_verified if token.verified == true

token_scopes contains scope if {
	some scope in split(object.get(claims, "scope", ""), " ")
	scope != ""
}

missing_scopes contains scope if {
	some scope in feature.scopes
	not scope in token_scopes
}

now_seconds := time.now_ns() / 1000000000

reasons contains msg if {
	not feature
	known := sort([name | some name, _ in known_features])
	msg := sprintf("'%s' is not a known CLI feature (known: %s)", [feature_name, concat(", ", known)])
}

reasons contains msg if {
	count(feature.scopes) > 0
	not token_present
	msg := sprintf(
		"feature '%s' needs a token with scope(s) %s; none was given (--token or --token-file)",
		[feature_name, concat(", ", sort(feature.scopes))],
	)
}

reasons contains msg if {
	token_present
	count(missing_scopes) > 0
	carried := concat(" ", sort(token_scopes))
	msg := sprintf(
		"the token lacks scope(s) %s needed by feature '%s' (it carries: %s)",
		[concat(", ", sort(missing_scopes)), feature_name, carried],
	)
}

reasons contains msg if {
	is_admin
	token_present
	not token_verified
	why := object.get(token, "error", "no verification keys were available")
	msg := sprintf(
		"admin feature '%s' needs a token verified against the gateway's keys; this one was not verified (%s)",
		[feature_name, why],
	)
}

reasons contains msg if {
	is_admin
	token_present
	not lifetime
	msg := sprintf("admin feature '%s' needs a token with numeric iat and exp claims", [feature_name])
}

reasons contains msg if {
	is_admin
	lifetime > data.council.cli.max_admin_token_seconds
	msg := sprintf(
		"admin feature '%s' needs a short-lived token (at most %d s); this one lives %d s",
		[feature_name, data.council.cli.max_admin_token_seconds, lifetime],
	)
}

lifetime := claims.exp - claims.iat if {
	is_number(claims.exp)
	is_number(claims.iat)
}

# Verified tokens were already checked for expiry; unverified claims are checked here so a
# stale token is refused with a clear reason whatever path it took.
reasons contains msg if {
	token_present
	is_number(claims.exp)
	now_seconds > claims.exp + data.council.cli.clock_leeway_seconds
	msg := sprintf("the token expired %d s ago; request a new one from the gateway", [round(now_seconds - claims.exp)])
}

# --- the device -----------------------------------------------------------------------

device := object.get(input, "device", {})

device_id := object.get(device, "id", "")

posture := object.get(device, "posture", {})

has_posture if {
	device_id != ""
	not device.error
	object.get(device, "source", "") == "gateway"
}

reasons contains msg if {
	bound := object.get(claims, "device_id", "")
	bound != ""
	device_id != ""
	device_id != bound
	msg := sprintf("the token is bound to device '%s' but the posture presented is for device '%s'", [bound, device_id])
}

reasons contains msg if {
	needs_posture
	device_id == ""
	msg := sprintf(
		"feature '%s' needs a fresh, compliant device posture; no device was named (--device-id with --gateway)",
		[feature_name],
	)
}

reasons contains msg if {
	needs_posture
	device_id != ""
	source := object.get(device, "source", "none")
	source != "gateway"
	msg := sprintf(
		"feature '%s' needs the device posture as the gateway recorded it; a posture from '%s' is self-reported",
		[feature_name, source],
	)
}

reasons contains msg if {
	needs_posture
	device_id != ""
	msg := sprintf("device '%s' posture is unavailable: %s", [device_id, device.error])
}

failed_checks contains check if {
	some check in data.council.cli.posture_checks
	not posture[check] == true
}

reasons contains msg if {
	needs_posture
	has_posture
	some check in failed_checks
	msg := sprintf("device posture check '%s' failed: %s", [check, check_detail(check)])
}

reasons contains msg if {
	needs_posture
	has_posture
	count(failed_checks) == 0
	not posture.compliant == true
	msg := sprintf("the gateway reports device '%s' as not compliant", [device_id])
}

# The gateway's reasons start with "<check>: "; reuse its words when it gave them.
check_detail(check) := trim_prefix(details[0], prefix) if {
	prefix := sprintf("%s: ", [check])
	details := [r | some r in object.get(posture, "reasons", []); startswith(r, prefix)]
	count(details) > 0
} else := "the device reported no passing result"

# --- obligations ----------------------------------------------------------------------

obligations["record_session"] if high_risk
