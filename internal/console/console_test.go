package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/server"
)

func TestSignInNeedsAValidTokenAndSetsASafeCookie(t *testing.T) {
	e := startEnv(t)
	b := e.browser()
	if st, body := b.get("/console/vms"); st != 200 || !strings.Contains(body, `id="token"`) {
		t.Fatalf("signed out: want the sign-in page, got %d", st)
	}
	csrf := b.csrf("/console/signin")
	if st, body := b.post("/console/signin", url.Values{"csrf": {csrf}, "token": {"dbt_not-a-token"}}); st != 401 || !strings.Contains(body, "signin-error") {
		t.Fatalf("bad token: %d", st)
	}
	// Without the sign-in form's CSRF token another site cannot sign a
	// browser in, even with a valid token.
	if st, _ := e.browser().post("/console/signin", url.Values{"token": {e.admin}}); st != 403 {
		t.Fatalf("sign-in without CSRF: %d, want 403", st)
	}
	csrf = b.csrf("/console/signin")
	resp, err := b.c.PostForm(b.base+"/console/signin", url.Values{"csrf": {csrf}, "token": {e.admin}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookie string
	for _, r := range []*http.Response{resp, resp.Request.Response} {
		if r != nil {
			for _, c := range r.Header.Values("Set-Cookie") {
				if strings.HasPrefix(c, "drawbridge_session=") && !strings.Contains(c, "Max-Age=0") {
					cookie = c
				}
			}
		}
	}
	if !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Lax") || strings.Contains(cookie, e.admin) {
		t.Fatalf("session cookie %q: want HttpOnly, SameSite=Lax and no token", cookie)
	}
	if st, body := b.get("/console/vms"); st != 200 || !strings.Contains(body, "web-01") {
		t.Fatalf("signed in: %d", st)
	}
	// Sign-out ends the session on the server.
	b.post("/console/signout", url.Values{"csrf": {b.csrf("/console/vms")}})
	if _, body := b.get("/console/vms"); !strings.Contains(body, `id="token"`) {
		t.Fatal("still signed in after sign-out")
	}
}

func TestStateChangesNeedTheSessionCSRFToken(t *testing.T) {
	e := startEnv(t)
	b := e.browser()
	b.signIn(e.admin)
	form := url.Values{"vm": {webVM}, "port": {"3389"}, "source": {"myip"}, "duration": {"1h"}}
	if st, _ := b.post("/console/request", form); st != 403 {
		t.Fatalf("request without CSRF: %d, want 403", st)
	}
	form.Set("csrf", "forged")
	if st, _ := b.post("/console/request", form); st != 403 {
		t.Fatalf("request with a wrong CSRF token: %d, want 403", st)
	}
	gs, _ := e.srv.Service.ListGrants(context.Background(), jit.GrantFilter{VMID: webVM})
	if len(gs) != 0 {
		t.Fatalf("a refused form opened %d grants", len(gs))
	}
	form.Set("csrf", b.csrf("/console/request?vm="+url.QueryEscape(webVM)))
	st, body := b.post("/console/request", form)
	if st != 200 || !strings.Contains(body, `class="state-Active"`) {
		t.Fatalf("request with CSRF: %d %s", st, body)
	}
}

func TestRBACHidesAndRefuses(t *testing.T) {
	e := startEnv(t)
	reader := e.user("rita", nil, "/", rbac.RoleReader)
	b := e.browser()
	b.signIn(reader)
	_, body := b.get("/console/vms")
	if strings.Contains(body, "Request access</a>") || strings.Contains(body, "Enable JIT</a>") {
		t.Fatal("a Reader is offered Request access or Enable JIT")
	}
	if _, pol := b.get("/console/policies"); strings.Contains(pol, ">Edit</a>") || strings.Contains(pol, ">Disable</button>") {
		t.Fatal("a Reader is offered to edit or disable a policy")
	}
	// The server refuses regardless of what the page offered.
	csrf := b.csrf("/console/access")
	if st, _ := b.post("/console/request", url.Values{"csrf": {csrf}, "vm": {webVM}, "port": {"3389"}, "source": {"myip"}, "duration": {"1h"}}); st != 403 {
		t.Fatalf("Reader's request: %d, want 403", st)
	}
	if st, _ := b.post("/console/recommendations/apply", url.Values{"csrf": {csrf}, "vm": {rgScope + "/providers/Microsoft.Compute/virtualMachines/win-01"}}); st != 403 && st != 409 {
		t.Fatalf("Reader's Enable JIT: %d, want 403", st)
	}
	if st, _ := b.post("/console/policies/disable", url.Values{"csrf": {csrf}, "vm": {webVM}}); st != 403 {
		t.Fatalf("Reader's Disable: %d, want 403", st)
	}
	if _, err := e.srv.Service.PolicyForVM(context.Background(), webVM); err != nil {
		t.Fatalf("web-01 lost its policy: %v", err)
	}
}

var approveRE = regexp.MustCompile(`/console/approvals/([0-9a-f]+)/approve`)

func TestApprovalQueue(t *testing.T) {
	e := startEnv(t)
	alice := e.user("alice", nil, rgScope, rbac.RoleJITRequester)
	bob := e.user("bob", []string{approver}, rgScope, rbac.RoleJITRequester)
	a, b := e.browser(), e.browser()
	a.signIn(alice)
	b.signIn(bob)
	// Justification is required for a port that needs approval, and the
	// message sits beside the field.
	form := url.Values{"csrf": {a.csrf("/console/access")}, "vm": {webVM}, "port": {"22"}, "source": {"myip"}, "duration": {"1h"}}
	st, body := a.post("/console/request", form)
	if st != 400 || !strings.Contains(body, `id="err-justification"`) {
		t.Fatalf("no justification: %d", st)
	}
	// A duration over the port's maximum is refused beside the duration.
	form.Set("port", "3389")
	form.Set("duration", "3h")
	if st, body := a.post("/console/request", form); st != 400 || !strings.Contains(body, `id="err-duration"`) {
		t.Fatalf("3h on a PT1H port: %d", st)
	}
	form.Set("port", "22")
	form.Set("duration", "1h")
	form.Set("justification", "deploy fix")
	if st, body := a.post("/console/request", form); st != 200 || !strings.Contains(body, `class="state-Pending"`) {
		t.Fatalf("request: %d", st)
	}
	// Bob also requests; he sees his own as impossible to approve.
	form.Set("csrf", b.csrf("/console/access"))
	b.post("/console/request", form)
	_, queue := b.get("/console/approvals")
	if !strings.Contains(queue, "your own request") {
		t.Fatal("the approver's own request is not shown as impossible")
	}
	m := approveRE.FindAllStringSubmatch(queue, -1)
	if len(m) != 1 {
		t.Fatalf("bob may approve %d requests, want 1 (alice's)", len(m))
	}
	// Bob cannot approve his own request by posting anyway.
	ps, _ := e.srv.Service.ListPendingRequests(context.Background())
	for _, p := range ps {
		if p.Request.Requestor == "bob" {
			if st, _ := b.post("/console/approvals/"+p.Request.ID+"/approve", url.Values{"csrf": {b.csrf("/console/approvals")}}); st != 403 {
				t.Fatalf("self-approval: %d, want 403", st)
			}
		}
	}
	st, body = b.post("/console/approvals/"+m[0][1]+"/approve", url.Values{"csrf": {b.csrf("/console/approvals")}})
	if st != 200 || !strings.Contains(body, "Access is open") {
		t.Fatalf("approve: %d", st)
	}
	gs, _ := e.srv.Service.ListGrants(context.Background(), jit.GrantFilter{VMID: webVM, ActiveOnly: true})
	if len(gs) != 1 || gs[0].Port != 22 || gs[0].Source.String() != "127.0.0.1" {
		t.Fatalf("after approval: %+v", gs)
	}
}

func TestVMListPaginatesAndFilters(t *testing.T) {
	e := startEnv(t)
	b := e.browser()
	b.signIn(e.admin)
	_, all := b.get("/console/vms")
	if !strings.Contains(all, "Showing 1–8 of 8") {
		t.Fatalf("sample inventory: %s", regexp.MustCompile(`id="vm-range">[^<]*`).FindString(all))
	}
	_, conf := b.get("/console/vms?view=configured")
	if !strings.Contains(conf, "Showing 1–1 of 1") || !strings.Contains(conf, "web-01") {
		t.Fatal("Configured tab should hold web-01 alone")
	}
	_, uns := b.get("/console/vms?view=unsupported")
	if !strings.Contains(uns, "FirewallManagerPolicy") {
		t.Fatal("Unsupported tab should give fw-01's reason")
	}
	_, q := b.get("/console/vms?q=bastion&cloud=aws")
	if !strings.Contains(q, "Showing 1–1 of 1") {
		t.Fatal("search bastion on AWS")
	}
}

// TestOIDCSignIn runs the authorization code flow with PKCE against the
// test issuer: the session names the ID token's subject with its groups;
// a callback this browser did not start, or a code used twice, is refused.
func TestOIDCSignIn(t *testing.T) {
	login, opt := withOIDC(t)
	login.Groups["carol"] = []string{approver}
	e := startEnv(t, opt)
	e.user("carol", nil, rgScope, rbac.RoleJITRequester)
	b := e.browser()
	resp, err := b.c.Get(b.base + "/console/oidc/login?next=/console/approvals")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	idp := resp.Request.URL // the issuer's sign-in form, after the redirect
	q := idp.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" {
		t.Fatalf("authorization request lacks PKCE, nonce or state: %s", idp)
	}
	form := url.Values{"username": {"carol"}}
	for k := range q {
		form.Set(k, q.Get(k))
	}
	// Stop at the callback to replay it later.
	b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = b.c.PostForm(idp.Scheme+"://"+idp.Host+"/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	callback := resp.Header.Get("Location")
	// Another browser cannot complete this sign-in (no state cookie).
	if st, _ := e.browser().get(strings.TrimPrefix(callback, e.srv.URL)); st != 403 {
		t.Fatalf("callback in another browser: %d, want 403", st)
	}
	b.c.CheckRedirect = nil
	st, body := b.get(strings.TrimPrefix(callback, e.srv.URL))
	if st != 200 || !strings.Contains(body, `<span id="principal">carol</span>`) || !strings.Contains(body, "<h1>Approvals</h1>") {
		t.Fatalf("after the callback: %d", st)
	}
	// The same callback again: its state was used.
	if st, _ := b.get(strings.TrimPrefix(callback, e.srv.URL)); st != 403 {
		t.Fatalf("replayed callback: %d, want 403", st)
	}
	// The groups claim counts for approvals: carol may decide another's request.
	alice := e.user("alice", nil, rgScope, rbac.RoleJITRequester)
	a := e.browser()
	a.signIn(alice)
	a.post("/console/request", url.Values{"csrf": {a.csrf("/console/access")}, "vm": {webVM}, "port": {"22"}, "source": {"myip"}, "duration": {"1h"}, "justification": {"x"}})
	if _, q := b.get("/console/approvals"); len(approveRE.FindAllString(q, -1)) != 1 {
		t.Fatal("carol (group approvers from the ID token) is not offered alice's request")
	}
}

// TestPolicyEditor: Enable JIT proposes Defender's defaults, the service's
// validation message comes back beside the field it names with nothing
// stored, and Disable removes the VM's protection.
func TestPolicyEditor(t *testing.T) {
	e := startEnv(t)
	b := e.browser()
	b.signIn(e.admin)
	app := rgScope + "/providers/Microsoft.Compute/virtualMachines/app-01"
	_, page := b.get("/console/policies/edit?vm=" + url.QueryEscape(app))
	for i, port := range []string{"22", "3389", "5985", "5986"} {
		if !strings.Contains(page, fmt.Sprintf(`name="number%d" value="%s"`, i, port)) || !strings.Contains(page, fmt.Sprintf(`name="max%d" value="PT3H"`, i)) {
			t.Fatalf("row %d is not the default %s, PT3H", i, port)
		}
	}
	form := url.Values{"csrf": {b.csrf("/console/policies")}, "vm": {app}}
	for i, port := range []string{"22", "3389", ""} {
		k := fmt.Sprint(i)
		form.Set("number"+k, port)
		form.Set("protocol"+k, "TCP")
		form.Set("source"+k, "*")
		form.Set("max"+k, "PT3H")
		form.Set("approvers"+k, "")
		form.Set("count"+k, "")
	}
	form.Set("max1", "PT99H")
	st, body := b.post("/console/policies/edit", form)
	if st != 400 || !strings.Contains(body, `id="e-max1"`) {
		t.Fatalf("PT99H: %d, want 400 with the message beside row 1's maximum duration", st)
	}
	if _, err := e.srv.Service.PolicyForVM(context.Background(), app); err == nil {
		t.Fatal("a refused policy was stored")
	}
	form.Set("max1", "PT2H")
	if st, body := b.post("/console/policies/edit", form); st != 200 || !strings.Contains(body, "Saved the JIT policy of app-01") {
		t.Fatalf("save: %d", st)
	}
	p, err := e.srv.Service.PolicyForVM(context.Background(), app)
	if err != nil {
		t.Fatal(err)
	}
	vp, _ := p.VM(app)
	if len(vp.Ports) != 2 || vp.Ports[1].Number != 3389 || vp.Ports[1].MaxRequestAccessDuration != "PT2H" {
		t.Fatalf("stored ports: %+v", vp.Ports)
	}
	if st, _ := b.post("/console/policies/disable", url.Values{"csrf": {b.csrf("/console/policies")}, "vm": {app}}); st != 200 {
		t.Fatalf("disable: %d", st)
	}
	if _, err := e.srv.Service.PolicyForVM(context.Background(), app); err == nil {
		t.Fatal("app-01 still has a policy after Disable")
	}
}

// TestVMListPages: 50 VMs a page, the pager links keep the filters, and a
// page past the end shows the last one.
func TestVMListPages(t *testing.T) {
	e := startEnv(t, func(c *server.Config) { c.SampleInventory = false })
	inv, _ := benchEstate(120)
	if err := e.srv.Service.ApplyInventory(jit.WithActor(context.Background(), jit.Actor{Principal: "setup"}), inv); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.signIn(e.admin)
	_, p1 := b.get("/console/vms?rg=rg-01")
	if !strings.Contains(p1, "Showing 1–6 of 6") {
		t.Fatal("rg-01 holds 6 of the 120 VMs")
	}
	_, p1 = b.get("/console/vms")
	if !strings.Contains(p1, "Showing 1–50 of 120") || strings.Count(p1, "<tr data-vm=") != 50 {
		t.Fatal("page 1: want rows 1-50 of 120")
	}
	next := regexp.MustCompile(`href="\?([^"]+)" rel="next"`).FindStringSubmatch(p1)
	if next == nil || !strings.Contains(next[1], "page=2") {
		t.Fatal("page 1 has no link to page 2")
	}
	_, p3 := b.get("/console/vms?view=all&page=9")
	if !strings.Contains(p3, "Showing 101–120 of 120") || strings.Count(p3, "<tr data-vm=") != 20 || strings.Contains(p3, `rel="next"`) {
		t.Fatal("a page past the end: want the last page, rows 101-120, no next link")
	}
}

// TestDenyAndStatusPoll: an approver denies with a reason, which the
// requester's status poll reports; someone who may neither see the VM's
// grants nor made the request gets 403 from the poll.
func TestDenyAndStatusPoll(t *testing.T) {
	e := startEnv(t)
	alice := e.user("alice", nil, rgScope, rbac.RoleJITRequester)
	bob := e.user("bob", []string{approver}, rgScope, rbac.RoleJITRequester)
	// A requester elsewhere: may not read web-01's grants.
	eve := e.user("eve", nil, "/subscriptions/aws-111122223333", rbac.RoleJITRequester)
	a, b, ev := e.browser(), e.browser(), e.browser()
	a.signIn(alice)
	b.signIn(bob)
	ev.signIn(eve)
	a.post("/console/request", url.Values{"csrf": {a.csrf("/console/access")}, "vm": {webVM}, "port": {"22"}, "source": {"myip"}, "duration": {"1h"}, "justification": {"x"}})
	ps, _ := e.srv.Service.ListPendingRequests(context.Background())
	if len(ps) != 1 {
		t.Fatalf("%d pending requests, want 1", len(ps))
	}
	id := ps[0].Request.ID
	status := "/console/requests/" + id + "/status"
	if st, body := a.get(status); st != 200 || !strings.Contains(body, `"state":"Pending"`) {
		t.Fatalf("poll while pending: %d %s", st, body)
	}
	if st, _ := ev.get(status); st != 403 {
		t.Fatalf("another user's poll: %d, want 403", st)
	}
	st, body := b.post("/console/approvals/"+id+"/deny", url.Values{"csrf": {b.csrf("/console/approvals")}, "reason": {"not during the freeze"}})
	if st != 200 || !strings.Contains(body, "Denied the request of alice") {
		t.Fatalf("deny: %d", st)
	}
	if _, body := a.get(status); !strings.Contains(body, `"state":"Denied"`) || !strings.Contains(body, "not during the freeze") {
		t.Fatalf("poll after deny: %s", body)
	}
	if gs, _ := e.srv.Service.ListGrants(context.Background(), jit.GrantFilter{VMID: webVM, ActiveOnly: true}); len(gs) != 0 {
		t.Fatalf("a denied request opened %d grants", len(gs))
	}
}
