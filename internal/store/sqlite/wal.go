package sqlite

import (
	"fmt"
	"time"
)

// checkpointInterval is how often the background checkpointer folds the
// WAL into the database file.
const checkpointInterval = 250 * time.Millisecond

// checkpointer runs PASSIVE checkpoints until the store closes. PASSIVE
// never waits for the writer and never blocks it; it copies what it can.
func (s *Store) checkpointer() {
	defer close(s.checkpointDone)
	t := time.NewTicker(checkpointInterval)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			// Leave the WAL small for the next start.
			_, _ = s.checkpointDB.Exec("PRAGMA wal_checkpoint(PASSIVE)")
			return
		case <-t.C:
			var busy, frames, done int64
			if err := s.checkpointDB.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &done); err == nil && frames >= 0 {
				s.walFrames.Store(frames)
			}
		}
	}
}

// walRestartFrames is the WAL length (64 MiB of 4 KiB pages) past which the
// writer rewinds it. PASSIVE checkpoints copy the WAL into the database but
// never rewind it: SQLite starts the WAL over only when a write begins with
// every frame copied and no reader on it, which under steady load never
// happens, so the file grew without bound (420 MB after 5,000 requests),
// and with it the cost of every write (extending the file) and read
// (searching the WAL index).
const walRestartFrames = 16384

// walLimitBytes is journal_size_limit: a rewound WAL file is truncated to it.
const walLimitBytes = walRestartFrames * 4096

// maybeRestartWAL rewinds a long WAL between batches: RESTART copies what
// the background checkpointer has not yet, waits for readers to move to
// the new snapshot, and starts the WAL over. It waits at most
// restartWaitMS for readers (a long read, such as an assessment of a big
// inventory, must not hold up writes): if they are not done by then, the
// checkpoint is only PASSIVE, and the next try waits for the checkpointer's
// next report, so a reader that stays costs the writer at most one short
// wait per checkpointInterval.
func (s *Store) maybeRestartWAL() {
	if s.walFrames.Load() < s.walRestartAt {
		return
	}
	if _, err := s.db.ExecContext(noCancel, fmt.Sprintf("PRAGMA busy_timeout = %d", restartWaitMS)); err != nil {
		return
	}
	var busy, frames, done int64
	err := s.db.QueryRowContext(noCancel, "PRAGMA wal_checkpoint(RESTART)").Scan(&busy, &frames, &done)
	_, _ = s.db.ExecContext(noCancel, fmt.Sprintf("PRAGMA busy_timeout = %d", busyTimeoutMS))
	s.walFrames.Store(0)
	if err == nil && busy == 0 {
		s.walRestarts.Add(1)
	}
}

// restartWaitMS bounds how long maybeRestartWAL holds up the writer.
const restartWaitMS = 10
