# METADATA
# title: Decision log masking
# description: |
#   JSON pointers erased from each decision's input before it is written to the
#   decision log: credentials and device secrets never reach the log.
package system.log

import rego.v1

# METADATA
# entrypoint: true
mask contains "/input/attributes/request/http/headers/authorization" if {
	input.attributes.request.http.headers.authorization
}

mask contains "/input/subject/token" if input.subject.token

mask contains "/input/context/api_key" if input.context.api_key
