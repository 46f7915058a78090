package main

import (
	"os"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/api/apitest"
	"github.com/drawbridge/drawbridge/internal/server"
)

// TestMain checks every request these tests send to a server, and every
// response they get, against the OpenAPI document.
func TestMain(m *testing.M) {
	os.Exit(apitest.Main(m, api.OpenAPIDocument(), api.CanonicalPath, server.SetTestTrafficWrapper))
}
