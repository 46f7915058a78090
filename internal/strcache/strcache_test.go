package strcache

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestFuncRemembersAndStaysBounded(t *testing.T) {
	calls := 0
	var mu sync.Mutex
	c := New(func(s string) string { mu.Lock(); calls++; mu.Unlock(); return strings.ToLower(s) }, 100)
	for range 3 {
		if got := c.Get("/Subscriptions/S1"); got != "/subscriptions/s1" {
			t.Fatalf("Get = %q", got)
		}
	}
	if calls != 1 {
		t.Fatalf("f called %d times for one argument, want 1", calls)
	}
	// Many distinct arguments, concurrently: results stay right and the
	// cache never holds more than its bound.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				s := fmt.Sprintf("ID-%d-%d", g, i)
				if got := c.Get(s); got != strings.ToLower(s) {
					t.Errorf("Get(%q) = %q", s, got)
				}
			}
		}()
	}
	wg.Wait()
	size := func() int {
		n := 0
		c.m.Load().Range(func(_, _ any) bool { n++; return true })
		return n
	}
	if n := size(); n > 100+4 { // a racing Store may land just after a reset
		t.Fatalf("cache holds %d entries, bound 100", n)
	}
	// Long arguments are computed, never kept.
	long := strings.Repeat("A", MaxLen+1)
	before := size()
	if got := c.Get(long); got != strings.ToLower(long) || size() != before {
		t.Fatalf("long argument: result ok %v, entries %d -> %d", got == strings.ToLower(long), before, size())
	}
}
