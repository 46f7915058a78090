package sqlite

import (
	"errors"
	"io/fs"
	"os"
)

// dbFileMode is the mode of the database and its -wal and -shm files: they
// hold every grant, token hash and audit record, so only the server's user
// may read them (like the admin token file).
const dbFileMode = 0o600

// restrictFiles creates the database file 0600 if it does not exist, before
// SQLite does (SQLite creates the -wal and -shm files with the database
// file's mode, so they follow), and tightens the mode of an existing
// database and its -wal and -shm files. A file the server may not chmod
// (another owner) is left as it is: its owner chose its mode.
func restrictFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, dbFileMode)
	switch {
	case err == nil:
		return f.Close()
	case !errors.Is(err, fs.ErrExist):
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&^dbFileMode == 0 {
			continue
		}
		if err := os.Chmod(p, dbFileMode); err != nil && !errors.Is(err, fs.ErrPermission) {
			return err
		}
	}
	return nil
}
