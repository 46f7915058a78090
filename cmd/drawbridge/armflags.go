//go:build !drawbridge_client

package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/spf13/pflag"

	"github.com/drawbridge/drawbridge/internal/cloudsim/armsim"
	"github.com/drawbridge/drawbridge/internal/provider/azure"
)

// armFlags say where Azure Resource Manager is and how to authenticate:
// the public cloud with DefaultAzureCredential unless told otherwise.
type armFlags struct {
	endpoint string // an ARM endpoint other than the public cloud's (the simulator)
	caFile   string // PEM certificate to trust for it
}

// armTokenEnv holds a static bearer token to send instead of
// DefaultAzureCredential's: for `drawbridge cloudsim azure`, which accepts
// any token. Never needed against real Azure.
const armTokenEnv = "DRAWBRIDGE_ARM_TOKEN"

func (f *armFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.endpoint, "arm-endpoint", "", "Azure Resource Manager URL (default: the public cloud); e.g. the one `drawbridge cloudsim azure` prints")
	fs.StringVar(&f.caFile, "arm-ca-file", "", "PEM certificate to trust for --arm-endpoint (the simulator's)")
}

// setup returns the credential and client options for the SDK.
func (f *armFlags) setup(getenv func(string) string) (azcore.TokenCredential, *arm.ClientOptions, error) {
	opts := azure.DefaultClientOptions()
	if f.endpoint != "" {
		opts.Cloud = armsim.CloudAt(f.endpoint)
		opts.DisableRPRegistration = true
	}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--arm-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("--arm-ca-file: %s holds no PEM certificate", f.caFile)
		}
		opts.Transport = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	}
	if tok := getenv(armTokenEnv); tok != "" {
		return armsim.StaticToken(tok), opts, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: opts.ClientOptions})
	if err != nil {
		return nil, nil, fmt.Errorf("azure credentials: %w", err)
	}
	return cred, opts, nil
}
