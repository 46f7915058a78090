//go:build !drawbridge_client

package main

import (
	"errors"
	"fmt"
	"github.com/drawbridge/drawbridge/internal/client"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drawbridge/drawbridge/internal/cloudsim/ec2sim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	awsprov "github.com/drawbridge/drawbridge/internal/provider/aws"
	"github.com/drawbridge/drawbridge/internal/server"
)

// addAWSCommands adds `inventory sync aws` and `cloudsim aws`.
func (a *app) addAWSCommands(root *cobra.Command) {
	if inv, _, err := root.Find([]string{"inventory"}); err == nil && inv != root {
		syncCmd := childNamed(inv, "sync")
		if syncCmd == nil {
			syncCmd = &cobra.Command{Use: "sync", Short: "Discover machines and network objects from a cloud and apply them"}
			inv.AddCommand(syncCmd)
		}
		syncCmd.AddCommand(a.syncAWSCmd())
	}
	cs := childNamed(root, "cloudsim")
	if cs == nil {
		cs = &cobra.Command{Use: "cloudsim", Short: "Run a wire-compatible cloud API simulator (for trying drawbridge without an account)"}
		root.AddCommand(cs)
	}
	cs.AddCommand(a.cloudsimAWSCmd())
}

func childNamed(c *cobra.Command, name string) *cobra.Command {
	for _, x := range c.Commands() {
		if x.Name() == name {
			return x
		}
	}
	return nil
}

// addAWSServerFlags adds the server's --aws-* flags to f.
func addAWSServerFlags(f *pflag.FlagSet, cfg *server.Config) {
	cfg.AWS = &awsprov.Config{}
	f.StringVar(&cfg.AWS.Region, "aws-region", "", "run the aws provider in this region (credentials from the AWS SDK's default chain: environment, shared config/SSO, instance role)")
	f.StringVar(&cfg.AWS.Profile, "aws-profile", "", "shared-config profile for the aws provider")
	durationFlag(f, &cfg.AWS.SyncInterval, "aws-sync-interval", 0, "discover the --aws-region's instances and security groups this often (first at start) and apply them as inventory; 0 never")
	f.IntVar(&cfg.AWS.RulesPerGroup, "aws-rules-per-group", 60, "the account's quota of inbound rules per security group (an enable whose carve needs more is refused)")
	f.StringVar(&cfg.AWS.Endpoint, "aws-endpoint", "", "EC2 endpoint URL instead of the region's (e.g. one served by drawbridge cloudsim aws)")
}

func (a *app) syncAWSCmd() *cobra.Command {
	var (
		cfg   awsprov.Config
		print bool
	)
	cmd := &cobra.Command{
		Use:   "aws --region REGION [--profile P]",
		Short: "List EC2 instances, network interfaces and security groups and apply them as inventory",
		Long: `List every EC2 instance, network interface and security group of one region
with the AWS SDK (credentials from its default chain: AWS_* environment
variables, shared config and SSO profiles, or the instance's role) and apply
them as the server's inventory. Instances get provider "aws". --print writes
the document instead of applying it.`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.Region == "" {
				return errors.New("--region: an AWS region is required")
			}
			ec2c, err := awsprov.NewClient(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			d, err := awsprov.Discover(cmd.Context(), ec2c, 0)
			if err != nil {
				return err
			}
			doc, err := d.Document()
			if err != nil {
				return err
			}
			apply := func(c *client.Client) (map[string]int, error) { return c.ApplyInventory(cmd.Context(), doc) }
			return a.applyDiscovered(doc, print, apply, func(counts map[string]int) string {
				return fmt.Sprintf("inventory synced from AWS %s: %d VMs, %d security groups", cfg.Region, counts["vms"], counts["securityGroups"])
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Region, "region", "", "AWS region to list (required)")
	f.StringVar(&cfg.Profile, "profile", "", "shared-config profile")
	f.StringVar(&cfg.Endpoint, "endpoint", "", "EC2 endpoint URL instead of the region's (e.g. one served by drawbridge cloudsim aws)")
	f.BoolVar(&print, "print", false, "print the discovered document instead of applying it")
	return cmd
}

func (a *app) cloudsimAWSCmd() *cobra.Command {
	var (
		listen, key, secret, region string
		empty                       bool
		faults                      ec2sim.Faults
	)
	cmd := &cobra.Command{
		Use:   "aws --listen ADDR --access-key KEY",
		Short: "Serve a simulated EC2 API (Query protocol) until SIGINT or SIGTERM",
		Long: `Serve a simulated EC2 account over EC2's Query protocol, for the AWS SDK
and CLI: DescribeInstances, DescribeNetworkInterfaces, DescribeSecurityGroups,
Create/DeleteSecurityGroup, Authorize/RevokeSecurityGroupIngress,
ModifyNetworkInterfaceAttribute and CreateTags. Requests must be SigV4-signed
with --access-key (and, with --secret-key, that secret). It starts with the AWS half of the sample
inventory unless --empty.`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return errors.New("--access-key: the access key clients must sign with is required")
			}
			sim := ec2sim.New(ec2sim.Options{AccessKey: key, SecretKey: secret, Region: region, AccountID: inventory.SampleAWSAccount})
			if !empty {
				sim.Seed(inventory.Sample())
			}
			sim.SetFaults(faults)
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			srv := &http.Server{Handler: sim}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() { <-ctx.Done(); _ = srv.Close() }()
			fmt.Fprintf(a.stdout, "EC2 simulator (region %s) listening on http://%s\n", region, ln.Addr())
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:4566", "address to listen on (host:port)")
	f.StringVar(&key, "access-key", "", "the access key ID requests must be signed with (required)")
	f.StringVar(&secret, "secret-key", "", "if set, verify each request's SigV4 signature in full with this secret (otherwise any secret is accepted)")
	f.StringVar(&region, "region", inventory.SampleAWSRegion, "the region requests must be scoped to")
	f.BoolVar(&empty, "empty", false, "start with no instances or groups")
	f.Float64Var(&faults.ThrottleRate, "throttle-rate", 0, "fraction of requests refused with RequestLimitExceeded")
	f.Float64Var(&faults.ErrorRate, "error-rate", 0, "fraction of requests failing with a 500")
	return cmd
}
