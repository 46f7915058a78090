//go:build !drawbridge_client

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/server"
)

// serverNetFlags are the server's TLS and proxy flags.
type serverNetFlags struct {
	proxies []string
}

func (n *serverNetFlags) add(cmd *cobra.Command, cfg *server.Config) {
	f := cmd.Flags()
	f.StringVar(&cfg.TLSCertFile, "tls-cert", "", "serve HTTPS with this PEM certificate (chain) file; reloaded when it changes or on SIGHUP")
	f.StringVar(&cfg.TLSKeyFile, "tls-key", "", "the PEM private key of --tls-cert")
	f.StringArrayVar(&n.proxies, "trusted-proxy", nil, "a reverse proxy's address or CIDR prefix whose X-Forwarded-For is believed (right-most untrusted hop is the client); repeat for several")
}

// apply parses the flags into cfg.
func (n *serverNetFlags) apply(cfg *server.Config) error {
	for _, s := range n.proxies {
		for _, one := range strings.Split(s, ",") {
			p, err := parsePrefixOrAddr(strings.TrimSpace(one))
			if err != nil {
				return fmt.Errorf("--trusted-proxy: %q is not an address or CIDR prefix (10.0.0.0/8, 2001:db8::1)", one)
			}
			cfg.TrustedProxies = append(cfg.TrustedProxies, p)
		}
	}
	return nil
}

func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// reloadOnHUP reloads the server's TLS certificate on every SIGHUP until ctx
// ends.
func reloadOnHUP(ctx context.Context, srv *server.Server, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := srv.ReloadTLS(); err != nil {
					log.Error("SIGHUP: reloading the TLS certificate failed; serving the previous one", "err", err)
				} else {
					log.Info("SIGHUP: reloaded the TLS certificate")
				}
			}
		}
	}()
}
