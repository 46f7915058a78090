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
	Verify                               auditstore.Report
	VerifyError                          string
	Page, PageCount, Total               int
	Prev, Next                           string
}

// auditPage is the audit log, newest first, filtered by principal, target
// (a resource ID and everything below it), operation and result, with the
// hash chain's verification status.
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
	recs, err := c.cfg.Access.Audit(ctx, auditstore.Filter{Principal: d.Principal, Target: d.Target})
	if err != nil {
		c.fail(w, r, err)
		return
	}
	// Newest first; the operation and result filters are applied here.
	var match []audit.Record
	for i := len(recs) - 1; i >= 0; i-- {
		rec := recs[i]
		if d.Operation != "" && !containsFold(rec.Operation, d.Operation) {
			continue
		}
		if d.Result != "" && !strings.EqualFold(d.Result, rec.Result) {
			continue
		}
		match = append(match, rec)
	}
	if rep, err := c.cfg.Access.VerifyAudit(ctx); err != nil {
		d.VerifyError = err.Error()
	} else {
		d.Verify = rep
	}
	size := c.cfg.PageSize
	d.Total = len(match)
	d.PageCount = max(1, (len(match)+size-1)/size)
	d.Page, _ = strconv.Atoi(q.Get("page"))
	d.Page = min(max(d.Page, 1), d.PageCount)
	lo, hi := (d.Page-1)*size, min(d.Page*size, len(match))
	d.Records = match[lo:hi]
	link := func(p int) string {
		v := url.Values{}
		for k, s := range map[string]string{"principal": d.Principal, "target": d.Target, "operation": d.Operation, "result": d.Result} {
			if s != "" {
				v.Set(k, s)
			}
		}
		v.Set("page", strconv.Itoa(p))
		return "?" + v.Encode()
	}
	if d.Page > 1 {
		d.Prev = link(d.Page - 1)
	}
	if hi < len(match) {
		d.Next = link(d.Page + 1)
	}
	c.render(w, r, http.StatusOK, "audit", page{Title: "Audit", Data: d})
}
