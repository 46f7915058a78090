package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

const vm1 = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"

var now0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestNewToken(t *testing.T) {
	p1, h1 := NewToken()
	p2, _ := NewToken()
	if !strings.HasPrefix(p1, "dbt_") {
		t.Errorf("token %q lacks the dbt_ prefix", p1)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(p1, "dbt_"))
	if err != nil || len(raw) != 32 {
		t.Errorf("token body is %d bytes (%v), want 32 random bytes (256 bits)", len(raw), err)
	}
	if p1 == p2 {
		t.Error("two tokens are equal")
	}
	sum := sha256.Sum256([]byte(p1))
	if h1 != hex.EncodeToString(sum[:]) {
		t.Errorf("hash %q is not the hex SHA-256 of the plaintext", h1)
	}
	if strings.Contains(h1, strings.TrimPrefix(p1, "dbt_")) {
		t.Error("hash contains the secret")
	}
	if !LooksLikeToken(p1) {
		t.Errorf("LooksLikeToken(%q) = false", p1)
	}
	for _, s := range []string{"", "dbt_", "dbt_short", "eyJhbGciOiJSUzI1NiJ9.e30.sig", "xyz_" + strings.TrimPrefix(p1, "dbt_"), p1 + "A", "dbt_" + strings.Repeat("!", 43)} {
		if LooksLikeToken(s) {
			t.Errorf("LooksLikeToken(%q) = true", s)
		}
	}
}

func TestIssueAndAuthenticate(t *testing.T) {
	plain, rec, err := Issue(IssueParams{Principal: "alice", TTL: 30 * 24 * time.Hour}, now0)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Kind != KindUser || rec.Principal != "alice" || !rec.CreatedAt.Equal(now0) ||
		!rec.ExpiresAt.Equal(time.Date(2025, 3, 31, 12, 0, 0, 0, time.UTC)) || rec.ID != rec.Hash[:16] || rec.Hash != HashToken(plain) {
		t.Errorf("record = %+v", rec)
	}
	p, err := Authenticate(rec, plain, now0.Add(time.Hour))
	if err != nil || p.Name != "alice" || len(p.Groups) != 0 {
		t.Errorf("Authenticate = %+v, %v", p, err)
	}
	if !rec.Matches(plain) || rec.Matches(plain+"x") || rec.Matches("") {
		t.Error("Matches accepts the wrong plaintext or refuses the right one")
	}
	other, _ := NewToken()
	if _, err := Authenticate(rec, other, now0); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("another token: %v", err)
	}
}

func TestIssueErrors(t *testing.T) {
	cases := []struct {
		p    IssueParams
		want string
	}{
		{IssueParams{Principal: " "}, "principal: must not be empty"},
		{IssueParams{Principal: "a", TTL: -time.Hour}, "expires: must not be negative"},
		{IssueParams{Principal: "a", Kind: "robot"}, `kind: must be "user" or "agent", not "robot"`},
		{IssueParams{Principal: "a", Kind: KindAgent}, "vmId: an agent token must name its VM"},
		{IssueParams{Principal: "a", Kind: KindAgent, VMID: "vm1"}, "vmId: resource ID \"vm1\" must start with /subscriptions/"},
		{IssueParams{Principal: "a", VMID: vm1}, "vmId: only agent tokens are bound to a VM"},
	}
	for _, c := range cases {
		_, _, err := Issue(c.p, now0)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Issue(%+v) = %v, want an error containing %q", c.p, err, c.want)
		}
	}
}

func TestCheck(t *testing.T) {
	base := Token{ID: "t1", Principal: "alice", Kind: KindUser, CreatedAt: now0}
	expiring := base
	expiring.ExpiresAt = now0.Add(time.Hour)
	revoked := base
	revoked.RevokedAt = now0.Add(10 * time.Minute)
	cases := []struct {
		name string
		rec  Token
		at   time.Time
		want string // "" for accepted
	}{
		{"no expiry, years later", base, now0.AddDate(5, 0, 0), ""},
		{"before expiry", expiring, now0.Add(59 * time.Minute), ""},
		{"at expiry", expiring, now0.Add(time.Hour), "token t1 expired at 2025-03-01T13:00:00Z"},
		{"after expiry", expiring, now0.Add(2 * time.Hour), "token t1 expired at 2025-03-01T13:00:00Z"},
		{"before revocation", revoked, now0.Add(5 * time.Minute), ""},
		{"after revocation", revoked, now0.Add(11 * time.Minute), "token t1 was revoked at 2025-03-01T12:10:00Z"},
		{"unknown kind", Token{ID: "t2", Principal: "x", Kind: "root"}, now0, "token t2 is malformed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Check(c.rec, c.at)
			if c.want == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want ErrUnauthenticated containing %q", err, c.want)
			}
		})
	}
}

func TestAgentTokens(t *testing.T) {
	_, agent, err := Issue(IssueParams{Principal: "agent:vm1", Kind: KindAgent, VMID: vm1}, now0)
	if err != nil {
		t.Fatal(err)
	}
	_, user, _ := Issue(IssueParams{Principal: "alice"}, now0)
	cases := []struct {
		name string
		rec  Token
		vm   string
		want bool
	}{
		{"agent, its own VM", agent, vm1, true},
		{"agent, its own VM in other case", agent, strings.ToUpper(vm1), true},
		{"agent, another VM", agent, "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm2", false},
		{"agent, a prefix of its VM's name", agent, strings.TrimSuffix(vm1, "1"), false},
		{"agent, its VM's resource group", agent, "/subscriptions/s1/resourceGroups/rg1", false},
		{"agent, garbage", agent, "vm1", false},
		{"user token", user, vm1, false},
	}
	for _, c := range cases {
		err := MayActOnVM(c.rec, c.vm)
		if (err == nil) != c.want {
			t.Errorf("%s: MayActOnVM = %v, want allowed=%v", c.name, err, c.want)
		}
		if err != nil && !errors.Is(err, ErrWrongVM) {
			t.Errorf("%s: %v does not wrap ErrWrongVM", c.name, err)
		}
	}
	if err := RequireUser(agent); !errors.Is(err, ErrWrongVM) || !strings.Contains(err.Error(), "may only read and report for VM "+vm1) {
		t.Errorf("RequireUser(agent) = %v", err)
	}
	if err := RequireUser(user); err != nil {
		t.Errorf("RequireUser(user) = %v", err)
	}
}
