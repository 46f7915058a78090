package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

// chromiumPath finds a Chromium or Chrome binary (CI installs Debian's
// chromium through .ci/run).
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// person is one browser context (its own cookies): one signed-in user.
type person struct {
	t    *testing.T
	name string
	ctx  context.Context
	base string
	shot *shots
}

type shots struct {
	t   *testing.T
	dir string
	n   int
}

// take saves a full-page PNG of the person's page as NN-name.png.
func (s *shots) take(p *person, name string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	s.n++
	path := filepath.Join(s.dir, fmt.Sprintf("%02d-%s.png", s.n, name))
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		s.t.Fatal(err)
	}
	// DRAWBRIDGE_CONSOLE_DOCS=docs refreshes the README's screenshots.
	if dir := os.Getenv("DRAWBRIDGE_CONSOLE_DOCS"); dir != "" && (name == "vm-list" || name == "request-dialog") {
		if err := os.WriteFile(filepath.Join(dir, "console-"+name+".png"), buf, 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
}

func (p *person) run(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		if p.shot != nil {
			p.shot.take(p, p.name+"-failure")
		}
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

func (p *person) text(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatalf("%s: text of %s: %v", p.name, sel, err)
	}
	return strings.TrimSpace(s)
}

func (p *person) signIn(token string) {
	p.t.Helper()
	p.run(chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(p.base+"/console/signin"),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#principal")))
	if got := p.text("#principal"); got != p.name {
		p.t.Fatalf("signed in as %q, want %q", got, p.name)
	}
}

// signInOIDC signs in with single sign-on: the console sends the browser
// to the issuer's sign-in form, which sends it back with a code.
func (p *person) signInOIDC() {
	p.t.Helper()
	p.run(chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(p.base+"/console/vms"),
		chromedp.Click(chromedp.CSS("#sso")),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), p.name),
		chromedp.Click(chromedp.CSS("#idp-signin")),
		chromedp.WaitVisible(chromedp.CSS("#principal")))
	if got := p.text("#principal"); got != p.name {
		p.t.Fatalf("signed in as %q, want %q", got, p.name)
	}
}

// TestBrowserRequestApproveRevokeEnableAudit drives the console in headless
// Chromium: a requester signs in through the test OIDC issuer, asks for SSH with My IP and sees Pending; an
// approver in a second browser context approves; the requester's page
// turns Active by itself, counts down and shows the grant applied, which
// the simulated NSG confirms; the requester revokes; an administrator
// enables JIT from Recommendations; the audit page shows every step.
// Screenshots of each page are kept in a directory the test prints.
func TestBrowserRequestApproveRevokeEnableAudit(t *testing.T) {
	bin := chromiumPath()
	if bin == "" {
		t.Skip("no chromium binary on PATH (CI installs Debian's chromium via .ci/run)")
	}
	login, oidcOpt := withOIDC(t)
	login.Groups["bob"] = []string{approver}
	e := startEnv(t, oidcOpt)
	// alice may request and end her own access early (revoke needs JIT write).
	// alice and bob sign in through the test OIDC issuer (bob's groups
	// claim holds "approvers"); roles are assigned to their names.
	e.user("alice", nil, rgScope, rbac.RoleJITRequester, rbac.RoleSecurityAdmin)
	e.user("bob", nil, rgScope, rbac.RoleJITRequester)

	dir, err := os.MkdirTemp("", "drawbridge-console-screens-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", dir)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browserCtx, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("start chromium %s: %v", bin, err)
	}
	sh := &shots{t: t, dir: dir}
	newPerson := func(name string) *person {
		ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		if err := chromedp.Do(ctx); err != nil { // opens the tab; no timeout on a context's first run
			t.Fatal(err)
		}
		return &person{t: t, name: name, ctx: ctx, base: e.srv.URL, shot: sh}
	}
	a, b, admin := newPerson("alice"), newPerson("bob"), newPerson(access.BootstrapPrincipal)

	// Requester: sign in, VM list, request SSH with My IP.
	a.signInOIDC()
	sh.take(a, "vm-list")
	row := `tr[data-vm="` + webVM + `"]`
	a.run(chromedp.Click(chromedp.CSS(row+` a.button`)), chromedp.WaitVisible(chromedp.CSS("#request-dialog")))
	if ip := a.text("#my-ip"); ip != "127.0.0.1" {
		t.Fatalf("My IP shows %q, want the address the server sees, 127.0.0.1", ip)
	}
	// Keyboard only: Space ticks the port, Enter on the button submits.
	a.run(chromedp.Focus(chromedp.CSS("#port-22")), chromedp.KeyEvent(" "),
		chromedp.SendKeys(chromedp.CSS("#justification"), "deploy the hotfix"))
	if checked, err := chromedp.Run(a.ctx, chromedp.JavascriptAttribute[bool](chromedp.CSS("#port-22"), "checked")); err != nil || !checked {
		t.Fatalf("Space did not tick port 22 (%v)", err)
	}
	sh.take(a, "request-dialog")
	a.run(chromedp.Focus(chromedp.CSS("#request-submit")), chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.CSS("#state")))
	if st := a.text("#state"); st != "Pending" {
		t.Fatalf("after requesting: state %q, want Pending", st)
	}
	sh.take(a, "request-pending")

	// Approver, in a second browser context: approve from the queue.
	b.signInOIDC()
	b.run(chromedp.Navigate(e.srv.URL+"/console/approvals"), chromedp.WaitVisible(chromedp.CSS("#approvals")))
	if q := b.text("#approvals"); !strings.Contains(q, "alice") || !strings.Contains(q, "deploy the hotfix") {
		t.Fatalf("approval queue: %q", q)
	}
	sh.take(b, "approvals")
	b.run(chromedp.Click(chromedp.CSS(`#approvals button[id^="approve-"]`)), chromedp.WaitVisible(chromedp.CSS("#flash")))

	// Requester: the page polls and turns Active, counts down, applied.
	a.run(chromedp.WaitVisible(chromedp.CSS("#state.state-Active")),
		chromedp.WaitVisible(chromedp.CSS(".applied .badge.ok")))
	first := a.text(".countdown")
	time.Sleep(2100 * time.Millisecond)
	second := a.text(".countdown")
	if first == second || !strings.Contains(second, ":") {
		t.Fatalf("countdown did not move: %q then %q", first, second)
	}
	if !nsgAllows(t, e, "127.0.0.1", "22") {
		t.Fatal("the simulated NSG has no allow rule for 127.0.0.1 on port 22")
	}
	sh.take(a, "request-active")
	a.run(chromedp.Click(chromedp.CSS("#revoke-22")), chromedp.WaitVisible(chromedp.CSS("#flash")))
	if nsgAllows(t, e, "127.0.0.1", "22") {
		t.Fatal("after revoking, the simulated NSG still allows 127.0.0.1 on port 22")
	}
	gs, _ := e.srv.Service.ListGrants(context.Background(), jit.GrantFilter{VMID: webVM, ActiveOnly: true})
	if len(gs) != 0 {
		t.Fatalf("after revoking: %d active grants", len(gs))
	}
	a.run(chromedp.Navigate(e.srv.URL + "/console/access"))
	sh.take(a, "my-access")

	// Administrator: enable JIT on an unhealthy VM from Recommendations.
	admin.signIn(e.admin)
	admin.run(chromedp.Navigate(e.srv.URL+"/console/recommendations"), chromedp.WaitVisible(chromedp.CSS("#unhealthy")))
	sh.take(admin, "recommendations")
	attr, err := chromedp.Run(admin.ctx, chromedp.AttributeValue(chromedp.CSS(`#unhealthy input[name="vm"]`), "value"))
	if err != nil || !attr.Exists {
		t.Fatalf("no unhealthy VM to enable JIT on: %v", err)
	}
	fixID := attr.Value
	admin.run(chromedp.Click(chromedp.CSS(`#unhealthy input[name="vm"]`)),
		chromedp.Click(chromedp.CSS("#enable-jit")), chromedp.WaitVisible(chromedp.CSS("#fix-plan")))
	sh.take(admin, "enable-jit-plan")
	admin.run(chromedp.Click(chromedp.CSS("#apply-plan")), chromedp.WaitVisible(chromedp.CSS("#flash")))
	if f := admin.text("#flash"); !strings.Contains(f, "Enabled JIT on 1") {
		t.Fatalf("after applying: %q", f)
	}
	if _, err := e.srv.Service.PolicyForVM(context.Background(), fixID); err != nil {
		t.Fatalf("%s has no policy after Enable JIT: %v", fixID, err)
	}

	// Audit: every step, and the chain verifies.
	admin.run(chromedp.Navigate(e.srv.URL+"/console/audit"), chromedp.WaitVisible(chromedp.CSS("#audit")))
	log := admin.text("#audit")
	for _, op := range []string{jit.AuditRequestPending, jit.AuditRequestApprove, jit.AuditGrantEnd, jit.AuditPolicyPut} {
		if !strings.Contains(log, op) {
			t.Errorf("audit page lacks %s", op)
		}
	}
	// Verification reads the whole log, so it runs when asked, not on every view.
	admin.run(chromedp.Click(chromedp.CSS("#verify")), chromedp.WaitVisible(chromedp.CSS("#chain .badge")))
	if !strings.Contains(admin.text("#chain"), "Chain verified") {
		t.Errorf("chain status: %q", admin.text("#chain"))
	}
	sh.take(admin, "audit")
	admin.run(chromedp.Navigate(e.srv.URL+"/console/policies"), chromedp.WaitVisible(chromedp.CSS("#policies")))
	sh.take(admin, "policies")
	// Phone width: the VM list reflows to one column.
	admin.run(chromedp.EmulateViewport(390, 844), chromedp.Navigate(e.srv.URL+"/console/vms"), chromedp.WaitVisible(chromedp.CSS(".vms")))
	sh.take(admin, "vm-list-phone")
	t.Logf("%d screenshots in %s", sh.n, dir)
}

// nsgAllows reports whether web-01's NSG (in the sim provider) has an
// allow rule from source on port.
func nsgAllows(t *testing.T, e *env, source, port string) bool {
	t.Helper()
	nsg, err := e.srv.Sim.NSG(context.Background(), webNSG)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range nsg.SecurityRules {
		if string(r.Access) == "Allow" && strings.HasPrefix(r.SourceAddressPrefix, source) && r.DestinationPortRange == port {
			return true
		}
	}
	return false
}
