package envoy.authz_test

import rego.v1

import data.envoy.authz

req(method, path, headers) := {"attributes": {"request": {"http": {"method": method, "path": path, "headers": headers}}}}

test_public_get_allowed if {
	d := authz.decision with input as req("GET", "/public/index.html", {})
	d.allow
	d.obligations.headers["x-council-caller"] == "anonymous"
}

test_missing_token_is_401 if {
	d := authz.decision with input as req("GET", "/api/datasets/7", {})
	not d.allow
	d.http_status == 401
	"missing bearer token" in d.reasons
}

test_wrong_service_is_403 if {
	d := authz.decision with input as req("DELETE", "/api/admin/users/1", {"authorization": "Bearer tok-analytics-1"})
	not d.allow
	d.http_status == 403
	"service \"analytics\" may not call /api/admin/" in d.reasons
}

test_known_service_allowed if {
	d := authz.decision with input as req("POST", "/api/datasets/7", {"authorization": "Bearer tok-ingest-1"})
	d.allow
	d.obligations.headers["x-council-caller"] == "ingest"
}

test_unknown_route_is_404 if {
	d := authz.decision with input as req("GET", "/nowhere", {})
	d.http_status == 404
}
