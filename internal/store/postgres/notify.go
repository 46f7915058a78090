package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// VMChannel is the LISTEN/NOTIFY channel on which every transaction that
// changes what a VM's firewall should allow (a new grant, a grant ended,
// a policy written or deleted) announces that VM's key (lower-cased ID).
// Notifications are transactional: they are delivered when, and only if,
// the transaction commits, to every replica listening, the sender included.
const VMChannel = "drawbridge_vm"

// notifyVM queues a notification for vmKey, sent at commit.
func (t *tx) notifyVM(ctx context.Context, vmKey string) error {
	_, err := t.exec(ctx, "notify", `SELECT pg_notify($1, $2)`, VMChannel, vmKey)
	return err
}

// Follow calls fn with the key of every VM changed by any replica, until
// ctx ends. It listens on its own connection (not one of the pool's); when
// that connection breaks it reconnects with backoff, and after every
// (re)connection it calls fn("") first, meaning "changes may have been
// missed: treat every VM as changed". fn runs on Follow's goroutine and
// should not block for long.
func (s *Store) Follow(ctx context.Context, fn func(vmKey string)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.follow(ctx, fn, func() { backoff = 100 * time.Millisecond })
		if ctx.Err() != nil {
			return
		}
		_ = err
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *Store) follow(ctx context.Context, fn func(string), connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{VMChannel}.Sanitize()); err != nil {
		return err
	}
	connected()
	fn("")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(strings.ToLower(n.Payload))
	}
}

// ExpiryService is what RunExpiryFollower drives (jit.Service).
type ExpiryService interface {
	ExpireDue(ctx context.Context) (int, error)
	NextEndTime(ctx context.Context) (time.Time, bool, error)
}

// RunExpiryFollower expires due grants at the earliest end time in the
// whole database, re-reading it whenever any replica changes a VM (wake
// receives a value). The service's own expiry job only learns about end
// times of grants made through this replica; this one makes a replica
// expire, on time, grants made through a replica that has since died.
// ExpireDue's claims (FOR UPDATE SKIP LOCKED) keep replicas that wake
// together from ending a grant twice. maxWait bounds every sleep, the
// safety net for a missed notification.
func RunExpiryFollower(ctx context.Context, svc ExpiryService, now func() time.Time, wake <-chan struct{}, maxWait time.Duration, onError func(error)) {
	report := func(err error) {
		if err != nil && onError != nil && ctx.Err() == nil {
			onError(err)
		}
	}
	for ctx.Err() == nil {
		_, err := svc.ExpireDue(ctx)
		report(err)
		wait := maxWait
		if err != nil {
			wait = min(wait, time.Second)
		}
		if next, ok, err := svc.NextEndTime(ctx); err != nil {
			report(err)
			wait = min(wait, time.Second)
		} else if ok {
			wait = min(wait, next.Sub(now()))
		}
		if wait < 0 {
			wait = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-wake:
			t.Stop()
		}
	}
}
