package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
)

// stateFormat is the state file's format version.
const stateFormat = 1

// StateFile is what the agent persists: the last snapshot it applied from
// the server (guarded ports, grants with their end times, the server's
// version) and its drift count. At start, and for --restore, it is what the
// host is guarded with before the server is reached.
type StateFile struct {
	Format int `json:"format"`
	// Saved is when the agent wrote the file.
	Saved time.Time `json:"saved"`
	// Snapshot is the last snapshot applied; Snapshot.Version is the
	// server's version of it.
	Snapshot agenthub.Snapshot `json:"snapshot"`
	// Drifts counts the repairs made since the agent started; LastDrift is
	// the latest (both for `drawbridge agent --status`).
	Drifts    int             `json:"drifts,omitempty"`
	LastDrift *agenthub.Drift `json:"lastDrift,omitempty"`
}

// LoadState reads a state file. A missing file is (nil, nil).
func LoadState(path string) (*StateFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var sf StateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	if sf.Format != stateFormat {
		return nil, fmt.Errorf("state file %s: format %d, this agent reads %d", path, sf.Format, stateFormat)
	}
	if _, err := sf.Snapshot.State(); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	return &sf, nil
}

// saveState writes sf to path atomically (a temporary file in the same
// directory, synced, renamed over path, the directory synced), mode 0600:
// a crash leaves the old file or the new one, never a torn one.
func saveState(path string, sf StateFile) error {
	sf.Format = stateFormat
	b, err := json.MarshalIndent(sf, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
