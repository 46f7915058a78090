package api

import _ "embed"

// openapi is the OpenAPI 3.1 description of this package's routes,
// generated from the route table and the handlers' Go types by
// go test ./internal/api -run TestOpenAPIDocument -update-openapi
// (the test fails when it is out of date).
//
//go:embed openapi.json
var openapi []byte

// OpenAPIDocument returns the OpenAPI 3.1 document of the REST API.
func OpenAPIDocument() []byte { return openapi }
