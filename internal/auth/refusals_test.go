package auth

import (
	"testing"
	"time"
)

func TestRefusalLimiterWindows(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewRefusalLimiter(time.Minute, 3, 5, 0)
	for i := range 3 {
		if ok, _ := l.Allow("eve", "198.18.0.1", t0.Add(time.Duration(i)*time.Second)); !ok {
			t.Fatalf("call %d refused before the limit", i)
		}
		l.Refused("eve", "198.18.0.1", t0.Add(time.Duration(i)*time.Second))
	}
	ok, wait := l.Allow("eve", "198.18.0.1", t0.Add(10*time.Second))
	if ok || wait != 50*time.Second {
		t.Fatalf("after 3 refusals: ok %v wait %v, want refused for the 50s left of the window", ok, wait)
	}
	for range 99 {
		l.Allow("eve", "198.18.0.9", t0.Add(11*time.Second))
	}
	// Another principal at eve's first address is still served: the
	// source has refusals left.
	if ok, _ := l.Allow("bob", "198.18.0.1", t0.Add(12*time.Second)); !ok {
		t.Fatal("bob refused for eve's refusals")
	}
	if s := l.Summaries(t0.Add(59*time.Second), false); len(s) != 0 {
		t.Fatalf("summaries before the window ended: %+v", s)
	}
	s := l.Summaries(t0.Add(60*time.Second), false)
	if len(s) != 1 || s[0].BySource || s[0].Principal != "eve" || s[0].TurnedAway != 100 || s[0].Refused != 3 || !s[0].Start.Equal(t0) {
		t.Fatalf("summaries = %+v, want one for eve: 3 refused, 100 turned away", s)
	}
	if ok, _ := l.Allow("eve", "198.18.0.1", t0.Add(61*time.Second)); !ok {
		t.Fatal("eve still refused in a new window")
	}
	if s := l.Summaries(t0.Add(200*time.Second), false); len(s) != 0 {
		t.Fatalf("summaries reported twice: %+v", s)
	}
}

func TestRefusalLimiterPerSource(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewRefusalLimiter(time.Minute, 100, 4, 0)
	for i, p := range []string{"a", "b", "c", "d"} {
		l.Refused(p, "2001:2::1", t0.Add(time.Duration(i)))
	}
	// The same /64, another principal: the source's refusals are used up.
	if ok, _ := l.Allow("e", "[2001:2::ffff]:443", t0.Add(time.Second)); ok {
		t.Fatal("source not limited across principals")
	}
	// A refusal after the window ended starts a new one; the old one is
	// still reported.
	l.Refused("a", "2001:2::1", t0.Add(2*time.Minute))
	s := l.Summaries(t0.Add(2*time.Minute), false)
	if len(s) != 1 || !s[0].BySource || s[0].TurnedAway != 1 || s[0].Principal != "" {
		t.Fatalf("summaries = %+v, want the source's, with no single principal", s)
	}
}

func TestRefusalLimiterFlushAll(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewRefusalLimiter(time.Minute, 1, 100, 0)
	l.Refused("eve", "198.18.0.1", t0)
	l.Allow("eve", "198.18.0.1", t0.Add(time.Second))
	if s := l.Summaries(t0.Add(2*time.Second), false); len(s) != 0 {
		t.Fatalf("open window reported: %+v", s)
	}
	s := l.Summaries(t0.Add(2*time.Second), true)
	if len(s) != 1 || s[0].TurnedAway != 1 || !s[0].End.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("at shutdown: %+v, want eve's open window ended now", s)
	}
}
