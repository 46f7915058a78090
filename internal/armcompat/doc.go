// Package armcompat checks that Microsoft's own Azure clients work against
// drawbridge unchanged. Its tests start a real drawbridge server (SQLite,
// the sim provider, authentication on), put a TLS front in front of it as
// a deployment would, and drive it only through the Azure SDK for Go's
// armsecurity.JitNetworkAccessPoliciesClient: every operation, paging of
// the four list calls, errors as azcore.ResponseError, and a request's
// whole life. They also hold every answer to the REST specification of
// Microsoft.Security jitNetworkAccessPolicies (2020-01-01): enum values
// read from the SDK's own constants, and SDK models that decode drawbridge's
// bodies without losing a field (drawbridge's additions are listed in
// api.SpecExtensions).
//
// The package has no code outside its tests.
package armcompat
