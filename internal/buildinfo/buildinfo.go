// Package buildinfo reads drawbridge's version and VCS revision from the
// build information the Go toolchain embeds. It imports nothing else, so
// the client-only build can print its version without linking the
// metrics package (and Prometheus) that also reports it.
package buildinfo

import "runtime/debug"

// Read returns the module version ("(devel)" for a build from a checkout)
// and the VCS revision ("unknown" when not built from a repository),
// suffixed "-dirty" when the tree had uncommitted changes.
func Read() (version, revision string) {
	version, revision = "(devel)", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if bi.Main.Version != "" {
		version = bi.Main.Version
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && revision != "unknown" {
		revision += "-dirty"
	}
	return
}
