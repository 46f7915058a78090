package aws

import (
	"context"
	"fmt"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// RetryOptions bound the SDK's standard retryer. EC2 throttles per account
// with a token bucket, so drawbridge retries throttling patiently instead
// of failing a user's request early: many attempts, and no client-side
// retry quota (which would give up once a burst of throttles drained it).
type RetryOptions struct {
	MaxAttempts int           // default 12
	MaxBackoff  time.Duration // default 5s (the SDK's is 20s: too long between attempts on a request path)
}

func (o RetryOptions) retryer() func() awssdk.Retryer {
	return func() awssdk.Retryer {
		return retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 12
			if o.MaxAttempts > 0 {
				so.MaxAttempts = o.MaxAttempts
			}
			so.MaxBackoff = 5 * time.Second
			if o.MaxBackoff > 0 {
				so.MaxBackoff = o.MaxBackoff
			}
			so.RateLimiter = ratelimit.None
		})
	}
}

// Config says how to reach EC2.
type Config struct {
	Region  string // required (or from AWS_REGION / the profile)
	Profile string // shared-config profile; "" for the default chain
	// Endpoint, if set, replaces EC2's regional endpoint (an
	// EC2-compatible endpoint such as `drawbridge cloudsim aws`).
	Endpoint string
	Retry    RetryOptions
	// SyncInterval, if positive, makes the server discover the region's
	// instances and groups this often and apply them as inventory.
	SyncInterval time.Duration
	// RulesPerGroup is the account's inbound-rules-per-group quota
	// (Provider.MaxRulesPerGroup); 0 means EC2's default, 60.
	RulesPerGroup int
}

// NewClient returns an EC2 client from the SDK's default configuration
// chain (environment, shared config and SSO, the instance's role through
// IMDS).
func NewClient(ctx context.Context, c Config) (*ec2.Client, error) {
	opts := []func(*config.LoadOptions) error{config.WithRetryer(c.Retry.retryer())}
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(c.Profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("no AWS region: pass --region or set AWS_REGION")
	}
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = awssdk.String(c.Endpoint)
		}
	}), nil
}

// NewEndpointClient returns an EC2 client for an explicit endpoint with
// static credentials: the wire simulator in tests, or an EC2-compatible
// endpoint.
func NewEndpointClient(endpoint, region, accessKey, secretKey string, ro RetryOptions) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:       region,
		BaseEndpoint: awssdk.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		Retryer:      ro.retryer()(),
	})
}
