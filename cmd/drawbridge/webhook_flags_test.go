package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/server"
)

func TestLoadWebhookSecret(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "secret")
	if err := os.WriteFile(good, []byte("  s3cret key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	urls := []string{"http://127.0.0.1:9/hook"}
	cases := []struct {
		name    string
		urls    []string
		path    string
		wantErr string
		want    string
	}{
		{"neither", nil, "", "", ""},
		{"both", urls, good, "", "s3cret key"},
		{"url without secret", urls, "", "--webhook-secret-file", ""},
		{"secret without url", nil, good, "no --webhook-url", ""},
		{"empty secret", urls, empty, "is empty", ""},
		{"missing file", urls, filepath.Join(dir, "nope"), "--webhook-secret-file", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := server.Config{}
			cfg.Webhook.URLs = c.urls
			err := loadWebhookSecret(&cfg, c.path)
			if c.wantErr == "" {
				if err != nil || string(cfg.Webhook.Secret) != c.want {
					t.Fatalf("secret %q, err %v; want %q", cfg.Webhook.Secret, err, c.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v; want one mentioning %q", err, c.wantErr)
			}
		})
	}
}
