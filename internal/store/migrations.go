package store

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// ErrNewerSchema is returned (wrapped) when a database was migrated by a
// newer drawbridge than this one; running older code on it could misread or
// damage data written by the newer schema.
var ErrNewerSchema = errors.New("database schema is newer than this drawbridge supports")

// Migration is one schema change, from a file named NNNN_name.sql.
type Migration struct {
	Version int
	Name    string // file name without .sql
	SQL     string
}

// LoadMigrations reads dir of fsys (a backend's embedded migrations) and
// returns them sorted by version, checking that versions run 1, 2, 3, ...
// without gaps or duplicates. A released migration is never edited: the
// schema changes by adding the next number.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", name)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: strings.TrimSuffix(name, ".sql"), SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %d", m.Name, i+1)
		}
	}
	return ms, nil
}

// LatestVersion is the highest version of a backend's embedded migrations
// (what readiness wants the database at); 0 if they do not load, which
// Open would have refused already.
func LatestVersion(fsys fs.FS, dir string) int {
	ms, err := LoadMigrations(fsys, dir)
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}
