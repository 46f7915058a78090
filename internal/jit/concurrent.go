package jit

// supersededBy reports whether one of a request's new grants on vp ends the
// older active grant old. By default (Azure's behaviour) any newer grant
// for the same port does, with reason NewerRequestInitiated. A port whose
// policy sets ConcurrentSources ends only an older grant from the same
// source: grants from different sources (two engineers on one host's SSH)
// stay side by side.
func supersededBy(vp VMPolicy, newer []Grant, old Grant) bool {
	for _, g := range newer {
		if g.Port != old.Port {
			continue
		}
		pp, ok := vp.Port(old.Port)
		if !ok || !pp.ConcurrentSources || g.Source.String() == old.Source.String() {
			return true
		}
	}
	return false
}
