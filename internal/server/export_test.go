package server

import (
	"time"

	"github.com/drawbridge/drawbridge/internal/store/sqlite"
)

// WriterBusy is the store's WriterBusy (time its serial writer spent on
// transactions, and how many it ran) when the store has one (SQLite);
// ok is false otherwise. The request benchmark reports it.
func (s *Server) WriterBusy() (busy time.Duration, jobs int64, ok bool) {
	w, ok := s.store.(interface{ WriterBusy() (time.Duration, int64) })
	if !ok {
		return 0, 0, false
	}
	busy, jobs = w.WriterBusy()
	return busy, jobs, true
}

// WithSQLiteOptions returns cfg with SQLite opened with o (benchmarks
// turn the store's caches off with it).
func WithSQLiteOptions(cfg Config, o sqlite.Options) Config {
	cfg.sqliteOptions = o
	return cfg
}
