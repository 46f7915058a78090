package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
	"github.com/drawbridge/drawbridge/internal/provider/nftables"
)

// Restore is `drawbridge agent --restore`: it puts the state file's guard
// and unexpired grants (plus guardPorts, plus whatever the kernel still
// holds) into the kernel once, without contacting the server, and returns
// what it restored. It is for boot (before the network is up) and for after
// nftables.service reloads, when the agent may not be running. A missing
// state file with no guardPorts is an error: there is nothing to restore.
func Restore(ctx context.Context, fw nftables.Firewall, stateFile, vm string, guardPorts []agenthub.SnapshotPort) (string, error) {
	var sf *StateFile
	if stateFile != "" {
		var err error
		if sf, err = LoadState(stateFile); err != nil {
			return "", err
		}
		if sf != nil && vm != "" && sf.Snapshot.VM != vm {
			return "", fmt.Errorf("state file %s is for VM %s, not %s", stateFile, sf.Snapshot.VM, vm)
		}
	}
	if sf == nil && len(guardPorts) == 0 {
		return "", errors.New("nothing to restore: no state file and no --guard-ports")
	}
	kst, err := fw.Observe(ctx)
	if err != nil {
		return "", err
	}
	now := time.Now()
	var st nftables.State
	if sf != nil {
		fs, err := sf.Snapshot.State()
		if err != nil {
			return "", err
		}
		st.Guarded = fs.Guarded
		for _, g := range fs.Grants {
			if g.End.After(now) {
				st.Grants = append(st.Grants, g)
			}
		}
	}
	gs, err := agenthub.Snapshot{Guarded: guardPorts}.State()
	if err != nil {
		return "", err
	}
	st.Guarded = append(st.Guarded, gs.Guarded...)
	st.Guarded = append(st.Guarded, kst.Guarded...)
	st.Grants = append(st.Grants, kst.Grants...)
	if len(st.Guarded) == 0 && len(st.Grants) == 0 {
		return "nothing to guard (the state file's snapshot disables JIT)", nil
	}
	if err := fw.Apply(ctx, st); err != nil {
		return "", err
	}
	version := uint64(0)
	if sf != nil {
		version = sf.Snapshot.Version
	}
	return fmt.Sprintf("restored state file v%d: %d guarded port entries, %d grant prefixes (%d already in the kernel)",
		version, len(st.Guarded), len(st.Grants), len(kst.Grants)), nil
}
