package server

import "time"

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
