package metrics

import (
	"context"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// GrantCounts is what the store holds per provider at a scrape: grants
// still Initiated, and of those how many are past their end time (the
// expiry job should have revoked them; alert when this stays above 0).
type GrantCounts struct {
	Active, PastEnd int
}

// WebhookCounts are a webhook dispatcher's totals since start.
type WebhookCounts struct {
	Delivered, Failed, Dropped, Retries int64
}

// Sources are read at every scrape. Each is optional. Store reads share
// Timeout (default 2s); a failing read leaves its metrics out of that
// scrape and counts drawbridge_scrape_source_errors_total.
type Sources struct {
	Grants       func(ctx context.Context, now time.Time) (map[string]GrantCounts, error)
	AuditRecords func(ctx context.Context) (int64, error)
	Webhooks     func() WebhookCounts
	WriterQueue  func() int
	Timeout      time.Duration
}

var (
	descActive   = prometheus.NewDesc("drawbridge_grants_active", "Grants in force (status Initiated), by provider.", []string{"provider"}, nil)
	descPastEnd  = prometheus.NewDesc("drawbridge_grants_past_end_time", "Grants still in force after their end time, by provider; should be 0 but for a moment.", []string{"provider"}, nil)
	descAudit    = prometheus.NewDesc("drawbridge_audit_records_total", "Records in the audit log (appended since the store was created).", nil, nil)
	descWebhooks = prometheus.NewDesc("drawbridge_webhook_deliveries_total", "Webhook deliveries (event × URL) by outcome: delivered (2xx), failed (given up), dropped (queue full), retried (attempts after the first).", []string{"outcome"}, nil)
	descQueue    = prometheus.NewDesc("drawbridge_store_writer_queue_depth", "Write transactions waiting for the store's writer.", nil, nil)
	descSrcErr   = prometheus.NewDesc("drawbridge_scrape_source_failed", "1 for a source whose store read failed during this scrape.", []string{"source"}, nil)
)

// SetSources registers the scrape-time sources.
func (m *Metrics) SetSources(s Sources) error {
	if s.Timeout <= 0 {
		s.Timeout = 2 * time.Second
	}
	return m.reg.Register(sourceCollector{s, m})
}

type sourceCollector struct {
	s Sources
	m *Metrics
}

func (c sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descActive, descPastEnd, descAudit, descWebhooks, descQueue, descSrcErr} {
		ch <- d
	}
}

func (c sourceCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.s.Timeout)
	defer cancel()
	fail := func(src string) {
		ch <- prometheus.MustNewConstMetric(descSrcErr, prometheus.GaugeValue, 1, src)
	}
	if c.s.Grants != nil {
		counts, err := c.s.Grants(ctx, time.Now())
		if err != nil {
			fail("grants")
		} else {
			c.m.mu.Lock()
			for _, p := range c.m.providers {
				if _, ok := counts[p]; !ok {
					counts[p] = GrantCounts{}
				}
			}
			c.m.mu.Unlock()
			names := make([]string, 0, len(counts))
			for p := range counts {
				names = append(names, p)
			}
			sort.Strings(names)
			for _, p := range names {
				ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(counts[p].Active), p)
				ch <- prometheus.MustNewConstMetric(descPastEnd, prometheus.GaugeValue, float64(counts[p].PastEnd), p)
			}
		}
	}
	if c.s.AuditRecords != nil {
		if n, err := c.s.AuditRecords(ctx); err != nil {
			fail("audit")
		} else {
			ch <- prometheus.MustNewConstMetric(descAudit, prometheus.CounterValue, float64(n))
		}
	}
	if c.s.Webhooks != nil {
		w := c.s.Webhooks()
		for outcome, v := range map[string]int64{"delivered": w.Delivered, "failed": w.Failed, "dropped": w.Dropped, "retried": w.Retries} {
			ch <- prometheus.MustNewConstMetric(descWebhooks, prometheus.CounterValue, float64(v), outcome)
		}
	}
	if c.s.WriterQueue != nil {
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(c.s.WriterQueue()))
	}
}
