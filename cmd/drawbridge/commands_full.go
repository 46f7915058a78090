//go:build !drawbridge_client

package main

import "github.com/spf13/cobra"

// buildFlavour is appended to `drawbridge version`: nothing for the full
// binary.
const buildFlavour = ""

// addOperatorCommands adds the commands that run drawbridge's server side
// or talk to a cloud with its SDK: they link the stores, providers, cloud
// SDKs and metrics that the client-only build (-tags drawbridge_client,
// commands_client.go) leaves out.
func (a *app) addOperatorCommands(root *cobra.Command) {
	root.AddCommand(a.serverCmd(), a.agentCmd(), a.demoCmd())
	a.addSyncAzure(root)     // inventory sync azure (cmd_sync_azure.go)
	a.addCloudsimAzure(root) // cloudsim azure (cmd_cloudsim.go)
	a.addAWSCommands(root)   // inventory sync aws, cloudsim aws (cmd_sync_aws.go)
}
