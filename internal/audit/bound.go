package audit

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxField is the most bytes a record's string field keeps. Longer values
// (a 4 MiB junk VM ID in a refused request, say) are cut to a prefix and
// marked with their original length, so one request cannot write megabytes
// into the log.
const MaxField = 512

// Clean returns s as Chain stores and hashes it: valid UTF-8 (each invalid
// byte becomes U+FFFD, as encoding/json would write it) and at most
// MaxField bytes, a longer value being cut at a character boundary and
// ending with "…[N bytes]" where N is its original length in bytes.
// A run of invalid bytes becomes one U+FFFD (encoding/json would write one
// per byte; either way the stored value is valid and stays as hashed).
//
// Chain hashes the cleaned value, so what a store gives back through JSON
// is exactly what was hashed: raw bytes that are not UTF-8 would be hashed
// as themselves and read back as U+FFFD, and the record would no longer
// verify. Clean is idempotent.
func Clean(s string) string { return Bound(s, MaxField) }

// Bound is Clean with a limit of n bytes (n at least 32), for other text
// that echoes a caller's input (error messages).
func Bound(s string, n int) string {
	n = max(n, 32)
	orig := len(s)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	marker := "…[" + strconv.Itoa(orig) + " bytes]"
	cut := n - len(marker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + marker
}
