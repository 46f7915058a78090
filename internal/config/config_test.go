package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

type settings struct {
	listen, db, secretFile string
	debug                  bool
	timeout                time.Duration
	urls                   []string
	limit                  int
}

func flagSet(s *settings) *pflag.FlagSet {
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	fs.StringVar(&s.listen, "listen", "127.0.0.1:8080", "address")
	fs.StringVar(&s.db, "db", "drawbridge.db", "database")
	fs.StringVar(&s.secretFile, "webhook-secret-file", "", "key file")
	fs.BoolVar(&s.debug, "debug", false, "debug")
	fs.DurationVar(&s.timeout, "approval-timeout", time.Hour, "timeout")
	fs.StringArrayVar(&s.urls, "webhook-url", nil, "urls")
	fs.IntVar(&s.limit, "limit", 10, "a number")
	return fs
}

func all(fs *pflag.FlagSet) []*pflag.Flag {
	var out []*pflag.Flag
	fs.VisitAll(func(f *pflag.Flag) { out = append(out, f) })
	return out
}

func writeYAML(t *testing.T, body string) map[string]any {
	t.Helper()
	p := filepath.Join(t.TempDir(), "drawbridge.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPrecedence: flag > environment > file > default, per flag.
func TestPrecedence(t *testing.T) {
	var s settings
	fs := flagSet(&s)
	if err := fs.Parse([]string{"--listen", "127.0.0.1:9000"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"DRAWBRIDGE_LISTEN":      "127.0.0.1:9100", // loses to the flag
		"DRAWBRIDGE_DB":          "/env/db",        // beats the file
		"DRAWBRIDGE_WEBHOOK_URL": "http://a.example, http://b.example",
	}
	file := writeYAML(t, `
listen: 127.0.0.1:9200
db: /file/db
debug: true
approval-timeout: 90s
webhook-url: [http://file.example]
limit: 42
`)
	if err := Apply(all(fs), func(k string) string { return env[k] }, file); err != nil {
		t.Fatal(err)
	}
	want := settings{listen: "127.0.0.1:9000", db: "/env/db", debug: true, timeout: 90 * time.Second,
		urls: []string{"http://a.example", "http://b.example"}, limit: 42}
	if s.listen != want.listen || s.db != want.db || s.debug != want.debug || s.timeout != want.timeout ||
		strings.Join(s.urls, " ") != strings.Join(want.urls, " ") || s.limit != want.limit || s.secretFile != "" {
		t.Fatalf("got %+v\nwant %+v", s, want)
	}
}

func TestFileListAndDefaults(t *testing.T) {
	var s settings
	fs := flagSet(&s)
	_ = fs.Parse(nil)
	if err := Apply(all(fs), func(string) string { return "" }, writeYAML(t, "webhook-url:\n  - http://x.example\n  - http://y.example\n")); err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.urls, " ") != "http://x.example http://y.example" || s.listen != "127.0.0.1:8080" || s.timeout != time.Hour {
		t.Fatalf("%+v", s)
	}
}

func TestErrorsNameTheSettingNotTheValue(t *testing.T) {
	var s settings
	fs := flagSet(&s)
	_ = fs.Parse(nil)
	err := Apply(all(fs), func(string) string { return "" }, writeYAML(t, "listne: x\n"))
	if err == nil || !strings.Contains(err.Error(), "unknown setting listne") {
		t.Fatalf("unknown key: %v", err)
	}
	err = Apply(all(fs), func(k string) string {
		if k == "DRAWBRIDGE_LIMIT" {
			return "s3cr3t-not-a-number"
		}
		return ""
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "DRAWBRIDGE_LIMIT") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("bad env value: %v", err)
	}
	err = Apply(all(flagSet(&settings{})), func(string) string { return "" }, writeYAML(t, "debug: [true]\n"))
	if err == nil || !strings.Contains(err.Error(), "debug") {
		t.Fatalf("list for a scalar flag: %v", err)
	}
}

func TestTable(t *testing.T) {
	tab := Table(all(flagSet(&settings{})))
	for _, want := range []string{"| `--approval-timeout` | `DRAWBRIDGE_APPROVAL_TIMEOUT` | `1h0m0s` | timeout |", "| `--webhook-url` | `DRAWBRIDGE_WEBHOOK_URL` |  | urls |"} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
}
