package ec2sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// verifySignature re-signs the request as the client must have (the
// headers it says it signed, the body's hash, its own date) with the SDK's
// SigV4 signer and compares the result.
func verifySignature(r *http.Request, body []byte, signedHeaders, region, date, key, secret string) *apiError {
	t, err := time.Parse("20060102T150405Z", date)
	if err != nil {
		return errf(401, "AuthFailure", "X-Amz-Date %q is not a SigV4 date", date)
	}
	req, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return errf(400, "InvalidRequest", "%v", err)
	}
	req.Host = r.Host
	for _, h := range strings.Split(signedHeaders, ";") {
		switch h {
		case "host":
		case "content-length":
			req.ContentLength = int64(len(body))
		default:
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	if !strings.Contains(";"+signedHeaders+";", ";content-length;") {
		req.ContentLength = 0
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "ec2", region, t); err != nil {
		return errf(500, "InternalError", "re-signing: %v", err)
	}
	if req.Header.Get("Authorization") != r.Header.Get("Authorization") {
		return errf(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
	}
	return nil
}
