# METADATA
# title: Envoy ext_authz policy for Council-fronted services
# description: |
#   Requests arrive in the shape of OPA's Envoy plugin input. Public routes are open;
#   everything else needs a bearer token naming a known service and a method its route
#   allows. Denials say which rule failed.
package envoy.authz

import rego.v1

default allow := false

# METADATA
# entrypoint: true
decision := {
	"allow": allow,
	"reasons": reasons,
	"obligations": {"headers": {"x-council-caller": caller}},
} if {
	allow
} else := {
	"allow": false,
	"reasons": reasons,
	"http_status": http_status,
}

http := input.attributes.request.http

# Routes are path prefixes; the longest matching prefix wins.
route := r if {
	matching := [r | some r in data.envoy.routes; startswith(http.path, r.prefix)]
	count(matching) > 0
	longest := max([count(r.prefix) | some r in matching])
	some r in matching
	count(r.prefix) == longest
}

public if route.public == true

token := t if {
	auth := object.get(http.headers, "authorization", "")
	startswith(auth, "Bearer ")
	t := substring(auth, 7, -1)
}

caller := data.envoy.tokens[token]

caller := "anonymous" if {
	public
	not known_token
}

known_token if data.envoy.tokens[token]

allow if {
	public
	http.method in route.methods
}

allow if {
	count(reasons) == 0
}

reasons contains msg if {
	not route
	msg := sprintf("no route matches %s %s", [http.method, http.path])
}

reasons contains msg if {
	route
	not public
	not token
	msg := "missing bearer token"
}

reasons contains msg if {
	route
	not public
	token
	not known_token
	msg := "bearer token is not recognised"
}

reasons contains msg if {
	route
	not http.method in route.methods
	msg := sprintf("method %s is not allowed on %s (allowed: %s)", [http.method, route.prefix, concat(", ", route.methods)])
}

reasons contains msg if {
	route
	not public
	some service in [data.envoy.tokens[token]]
	not service in route.callers
	msg := sprintf("service %q may not call %s", [service, route.prefix])
}

http_status := 401 if {
	some r in reasons
	contains(r, "token")
} else := 404 if {
	not route
} else := 403
