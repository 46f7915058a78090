package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

type auditData struct {
	Principal, Target, Operation, Result string
	Records                              []audit.Record
	Verified                             bool // the chain was verified on this request (?verify=1)
	Verify                               auditstore.Report
	VerifyError                          string
	Checkpoint                           *audit.Checkpoint // the newest signed head, if any
	Newest, Older, VerifyLink            string
}

// auditPage is the audit log, newest first, filtered by principal, target
// (a resource ID and everything below it), operation and result. It reads
// one page of the log in constant memory (before=SEQ pages back), and
// verifies the hash chain only when asked (?verify=1): a verification
// reads the whole log, too much for every page view of a large one.
func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, u *user) {
	q := r.URL.Query()
	d := auditData{Principal: strings.TrimSpace(q.Get("principal")), Target: strings.TrimSpace(q.Get("target")),
		Operation: strings.TrimSpace(q.Get("operation")), Result: q.Get("result")}
	target := "/"
	if d.Target != "" {
		target = d.Target
	}
	if c.cfg.Access == nil || !c.may(u, rbac.OpAuditRead, target) {
		c.fail(w, r, denied(rbac.OpAuditRead, target))
		return
	}
	ctx := r.Context()
	before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
	f := auditstore.Filter{Principal: d.Principal, Target: d.Target, Operation: d.Operation, Result: d.Result}
	recs, older, err := c.cfg.Access.AuditNewest(ctx, f, max(before, 0), c.cfg.PageSize)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	d.Records = recs
	if q.Get("verify") == "1" {
		d.Verified = true
		if rep, err := c.cfg.Access.VerifyAudit(ctx); err != nil {
			d.VerifyError = err.Error()
		} else {
			d.Verify = rep
		}
	} else if cp, ok, err := c.cfg.Access.LatestCheckpoint(ctx); err == nil && ok {
		d.Checkpoint = &cp
	}
	link := func(set map[string]string) string {
		v := url.Values{}
		for k, s := range map[string]string{"principal": d.Principal, "target": d.Target, "operation": d.Operation, "result": d.Result} {
			if s != "" {
				v.Set(k, s)
			}
		}
		for k, s := range set {
			v.Set(k, s)
		}
		return "?" + v.Encode()
	}
	if before > 0 {
		d.Newest = link(nil)
	}
	if older > 0 {
		d.Older = link(map[string]string{"before": strconv.FormatInt(older, 10)})
	}
	d.VerifyLink = link(map[string]string{"verify": "1"})
	c.render(w, r, http.StatusOK, "audit", page{Title: "Audit", Data: d})
}
