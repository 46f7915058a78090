package auth

import (
	"testing"
	"time"
)

func TestFailureLimiter(t *testing.T) {
	l := NewFailureLimiter(3, time.Minute, 0)
	const src = "198.18.0.7:51234"
	step := func(name string, at time.Duration, wantOK bool, wantRetry time.Duration) {
		t.Helper()
		ok, retry := l.Allow(src, now0.Add(at))
		if ok != wantOK || retry != wantRetry {
			t.Errorf("%s (t+%s): Allow = %v, %s; want %v, %s", name, at, ok, retry, wantOK, wantRetry)
		}
	}
	step("unknown source", 0, true, 0)
	l.Fail(src, now0)
	l.Fail(src, now0.Add(time.Second))
	step("after two failures", 2*time.Second, true, 0)
	l.Fail(src, now0.Add(2*time.Second))
	// 3 failures; 2s of refill since the first leave 58s to the next token.
	step("after three failures", 2*time.Second, false, 58*time.Second)
	step("other port, same address", 2*time.Second, false, 58*time.Second)
	if ok, _ := l.Allow("198.18.0.8:1", now0.Add(2*time.Second)); !ok {
		t.Error("another address is limited too")
	}
	step("half a refill later", 32*time.Second, false, 28*time.Second)
	step("one refill later", 62*time.Second, true, 0)
	l.Fail(src, now0.Add(62*time.Second))
	step("failing again empties it", 62*time.Second, false, 58*time.Second)
	// A clock stepping backwards neither refills nor panics.
	step("clock stepped back", 10*time.Second, false, 58*time.Second)
	step("long after", 10*time.Minute, true, 0)
	// Further failures cannot push the bucket below empty: one refill is
	// always enough to try again.
	for i := 0; i < 10; i++ {
		l.Fail(src, now0.Add(10*time.Minute))
	}
	step("after ten more failures", 10*time.Minute, false, time.Minute)
	step("one refill after those", 11*time.Minute, true, 0)
}

func TestFailureLimiterIPv6PrefixAndPrune(t *testing.T) {
	l := NewFailureLimiter(1, time.Minute, 2)
	l.Fail("[2001:2::1]:443", now0)
	if ok, _ := l.Allow("2001:2::ffff", now0); ok {
		t.Error("another address in the same /64 is not limited")
	}
	if ok, _ := l.Allow("2001:2:0:1::1", now0); !ok {
		t.Error("an address in another /64 is limited")
	}
	l.Fail("198.18.0.1", now0)
	if l.Tracked() != 2 {
		t.Fatalf("tracked %d sources, want 2", l.Tracked())
	}
	// At the cap, a new source makes room by forgetting refilled buckets.
	l.Fail("198.18.0.2", now0.Add(2*time.Minute))
	if l.Tracked() != 1 {
		t.Errorf("tracked %d sources after pruning at the cap, want 1", l.Tracked())
	}
	l.Prune(now0.Add(5 * time.Minute))
	if l.Tracked() != 0 {
		t.Errorf("tracked %d sources after Prune, want 0", l.Tracked())
	}
}

func TestSourceKey(t *testing.T) {
	cases := map[string]string{
		"198.18.0.7":             "198.18.0.7",
		"198.18.0.7:8080":        "198.18.0.7",
		"[2001:2::1]:22":         "2001:2::/64",
		"2001:2::abcd:1":         "2001:2::/64",
		"::ffff:198.18.0.9":      "198.18.0.9",
		"[fe80::1%eth0]:22":      "fe80::/64",
		"not-an-address":         "not-an-address",
		"2001:2:0:0:1:2:3:4":     "2001:2::/64",
		"2001:0002:0000:0001::1": "2001:2:0:1::/64",
	}
	for in, want := range cases {
		if got := SourceKey(in); got != want {
			t.Errorf("SourceKey(%q) = %q, want %q", in, got, want)
		}
	}
}
