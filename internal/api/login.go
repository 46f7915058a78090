package api

// LoginConfig is what GET /drawbridge/v1/login tells a CLI about signing
// in: the OIDC issuer and the public client to run the device
// authorization grant (RFC 8628) with. Empty Issuer: the server takes API
// tokens only.
type LoginConfig struct {
	Issuer   string   `json:"issuer,omitempty"`
	ClientID string   `json:"clientId,omitempty"`
	Scopes   []string `json:"scopes,omitempty"`
}
