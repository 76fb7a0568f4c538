// Package dynconn holds what belongs to the whole project rather than to one
// package: the API contract, compiled into the binary so /openapi.yaml always
// serves the spec the server was built with.
package dynconn

import _ "embed"

// OpenAPI is openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
