package armsim

import (
	"context"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// StaticToken is a credential that always returns the same bearer token,
// for clients of the simulator (which checks only that one is sent).
type StaticToken string

// GetToken implements azcore.TokenCredential.
func (t StaticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(t), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// Cloud is the cloud configuration whose Resource Manager is the simulator.
func (s *Server) Cloud() cloud.Configuration {
	return CloudAt(s.URL())
}

// CloudAt is the cloud configuration whose Resource Manager is at endpoint.
func CloudAt(endpoint string) cloud.Configuration {
	return cloud.Configuration{
		ActiveDirectoryAuthorityHost: "https://login.microsoftonline.com/",
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Audience: "https://management.core.windows.net/", Endpoint: endpoint},
		},
	}
}

// ClientOptions configure an SDK client for the simulator: its cloud, a
// transport that trusts its certificate, and retries fast enough for tests
// (the retry policy itself is the SDK's).
func (s *Server) ClientOptions() *arm.ClientOptions {
	return &arm.ClientOptions{
		ClientOptions: policy.ClientOptions{
			Cloud:     s.Cloud(),
			Transport: s.HTTPClient(),
			Retry:     policy.RetryOptions{MaxRetries: 10, RetryDelay: time.Millisecond, MaxRetryDelay: 50 * time.Millisecond},
		},
		DisableRPRegistration: true,
	}
}
