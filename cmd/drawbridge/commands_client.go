//go:build drawbridge_client

package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// buildFlavour marks the client-only build in `drawbridge version`.
const buildFlavour = " [client only]"

// addOperatorCommands adds nothing: this is the requester's and approver's
// build (go build -tags drawbridge_client), which leaves out the server,
// agent, demo, inventory sync and cloudsim commands so that it links none
// of the stores, providers, cloud SDKs or metrics, and starts in a
// fraction of the full binary's time.
func (a *app) addOperatorCommands(root *cobra.Command) {
	root.Long = strings.Replace(root.Long, "\n"+demoHint, "", 1) + `

This is the client-only build: server, agent, demo, inventory sync and
cloudsim are in the full drawbridge binary (built without -tags
drawbridge_client).`
}
