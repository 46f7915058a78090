//go:build tools

// Package deps pins modules that packages under construction will import, so
// that parallel work does not race on go.mod. Remove an import once real code uses it.
package deps

import (
	_ "github.com/coreos/go-oidc/v3/oidc"
	_ "github.com/google/nftables"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/spf13/cobra"
	_ "modernc.org/sqlite"
	_ "pgregory.net/rapid"
	_ "sigs.k8s.io/yaml"
)
