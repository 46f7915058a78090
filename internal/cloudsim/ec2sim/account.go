package ec2sim

import (
	"slices"
	"time"
)

// PutGroup adds or replaces a security group as given (visible at once).
func (s *Server) PutGroup(g Group) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := g.clone()
	c.visibleAt = time.Time{}
	if c.OwnerID == "" {
		c.OwnerID = s.opts.AccountID
	}
	s.groups[c.ID] = &c
}

// PutENI adds or replaces a network interface.
func (s *Server) PutENI(e ENI) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := e.clone()
	s.enis[c.ID] = &c
}

// PutInstance adds or replaces an instance (its ENIs are put separately).
func (s *Server) PutInstance(in Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := in.clone()
	if c.State == "" {
		c.State = "running"
	}
	s.instances[c.ID] = &c
}

// AddIngress appends rules to a group directly, as a person (or IaC) editing
// the group outside drawbridge would.
func (s *Server) AddIngress(groupID string, rules ...Rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.groups[groupID]; g != nil {
		g.Ingress = append(g.Ingress, rules...)
	}
}

// State is a deep copy of the account, for comparisons in tests.
type State struct {
	Groups map[string]Group
	ENIs   map[string]ENI
}

// Snapshot returns the account as it is now (every group, visible or not).
func (s *Server) Snapshot() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Groups: map[string]Group{}, ENIs: map[string]ENI{}}
	for id, g := range s.groups {
		c := g.clone()
		c.visibleAt = time.Time{}
		st.Groups[id] = c
	}
	for id, e := range s.enis {
		st.ENIs[id] = e.clone()
	}
	return st
}

// Group returns a copy of a group.
func (s *Server) Group(id string) (Group, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[id]
	if g == nil {
		return Group{}, false
	}
	c := g.clone()
	c.visibleAt = time.Time{}
	return c, true
}

// ENI returns a copy of a network interface.
func (s *Server) ENI(id string) (ENI, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.enis[id]
	if e == nil {
		return ENI{}, false
	}
	return e.clone(), true
}

// SameRules reports whether two rule lists hold the same rules
// (descriptions included), whatever their order.
func SameRules(a, b []Rule) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(r Rule) string { return r.Key() + "|" + r.Description }
	x, y := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		x[i], y[i] = key(a[i]), key(b[i])
	}
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
