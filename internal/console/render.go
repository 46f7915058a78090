package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// page is what every template gets.
type page struct {
	Title  string
	Active string
	User   *user
	CSRF   string
	Nav    []navItem
	Flash  string
	Error  string
	Data   any
}

type navItem struct {
	Href, Label, Key string
}

var funcs = template.FuncMap{
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"ago": func(t time.Time) string { return roundDur(time.Since(t)) + " ago" },
	"q":   url.QueryEscape,
	"vmName": func(id string) string {
		if i := strings.LastIndexByte(id, '/'); i >= 0 {
			return id[i+1:]
		}
		return id
	},
	"rg": func(id string) string {
		if r, err := resource.Parse(id); err == nil {
			return r.ResourceGroup()
		}
		return ""
	},
	"join": func(xs []string) string { return strings.Join(xs, ", ") },
	"add":  func(a, b int) int { return a + b },
	"list": func(xs ...string) []string { return xs },
}

func roundDur(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	default:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// parsePages parses each page template together with the layout.
func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(assets, n)
		if err != nil {
			return nil, err
		}
		out[base] = t
	}
	return out, nil
}

// nav lists the pages u may see.
func (c *Console) nav(u *user) []navItem {
	items := []navItem{{Prefix + "vms", "Virtual machines", "vms"}, {Prefix + "access", "My access", "access"}}
	if c.may(u, rbac.OpGrantsList, "/") || c.mayAnyApprove(u) {
		items = append(items, navItem{Prefix + "approvals", "Approvals", "approvals"})
	}
	if c.may(u, rbac.OpPolicyList, "/") {
		items = append(items, navItem{Prefix + "policies", "Policies", "policies"})
	}
	if c.may(u, rbac.OpAssessRead, "/") {
		items = append(items, navItem{Prefix + "recommendations", "Recommendations", "recommendations"})
	}
	if c.cfg.Access != nil && c.may(u, rbac.OpAuditRead, "/") {
		items = append(items, navItem{Prefix + "audit", "Audit", "audit"})
	}
	return items
}

// mayAnyApprove: a user in any group may be an approver; the page itself
// filters by what they may see.
func (c *Console) mayAnyApprove(u *user) bool { return len(u.principal.Groups) > 0 }

// render executes a page into a buffer first, so a template error is a
// clean 500 rather than half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	if u, ok := r.Context().Value(userKey{}).(*user); ok && u != nil {
		p.User = u
		p.CSRF = u.csrf
		p.Nav = c.nav(u)
	}
	if p.Active == "" {
		p.Active = name
	}
	if p.Flash == "" {
		p.Flash = r.URL.Query().Get("flash")
	}
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		c.cfg.Logger.Error("console template", "page", name, "err", err)
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// fail shows an error page (a service error, or a refusal).
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	c.render(w, r, status, "error", page{Title: http.StatusText(status), Active: "-", Error: err.Error()})
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, jit.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, jit.ErrForbidden), errors.Is(err, rbac.ErrDenied):
		return http.StatusForbidden
	case errors.Is(err, jit.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, jit.ErrConflict):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// denied is the error of a refused operation.
func denied(op rbac.Operation, target string) error {
	return fmt.Errorf("%w: you may not perform %s on %s", rbac.ErrDenied, op, target)
}

// redirect sends a POST's browser to a page with a message (Post/Redirect/Get).
func redirect(w http.ResponseWriter, r *http.Request, to, flash string) {
	if flash != "" {
		sep := "?"
		if strings.Contains(to, "?") {
			sep = "&"
		}
		to += sep + "flash=" + url.QueryEscape(flash)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}
