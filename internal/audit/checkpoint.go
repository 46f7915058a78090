package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Checkpoint is a signed chain head: the server's Ed25519 key vouches that
// the log's record Seq had hash Hash at Time. The hash chain alone lets
// whoever can write the database rewrite history and recompute every
// hash; a checkpoint cannot be forged without the key, so a log that no
// longer matches a checkpoint (an edited, inserted or deleted record at
// or before its Seq) is detected.
type Checkpoint struct {
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	KeyID     string    `json:"keyId"`     // KeyID of the signing key
	Signature string    `json:"signature"` // base64 Ed25519 signature of the signed message
}

// message is what a checkpoint's signature covers.
func (c Checkpoint) message() []byte {
	return []byte("drawbridge-audit-checkpoint-v1\n" + strconv.FormatInt(c.Seq, 10) + "\n" + c.Hash + "\n" + c.Time.UTC().Format(time.RFC3339Nano) + "\n")
}

// KeyID names a public key: the hex of the first 8 bytes of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// SignCheckpoint returns the checkpoint of head (seq, hash) at t.
func SignCheckpoint(key ed25519.PrivateKey, seq int64, hash string, t time.Time) Checkpoint {
	c := Checkpoint{Seq: seq, Hash: hash, Time: t.UTC().Truncate(time.Microsecond), KeyID: KeyID(key.Public().(ed25519.PublicKey))}
	c.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, c.message()))
	return c
}

// ErrBadCheckpoint is returned (wrapped) for a checkpoint whose signature
// does not verify under the key.
var ErrBadCheckpoint = errors.New("checkpoint signature does not verify")

// VerifySignature checks c's signature under pub.
func (c Checkpoint) VerifySignature(pub ed25519.PublicKey) error {
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil || !ed25519.Verify(pub, c.message(), sig) {
		return fmt.Errorf("checkpoint at seq %d (key %s): %w under key %s", c.Seq, c.KeyID, ErrBadCheckpoint, KeyID(pub))
	}
	return nil
}

// CheckpointVerifier checks a log against signed checkpoints while its
// records stream by (Record for each, in order, then Finish), holding only
// the checkpoints.
type CheckpointVerifier struct {
	want    map[int64]Checkpoint
	matched int
}

// NewCheckpointVerifier checks every checkpoint's signature under pub and
// returns a verifier expecting the log to match them all.
func NewCheckpointVerifier(pub ed25519.PublicKey, cps []Checkpoint) (*CheckpointVerifier, error) {
	v := &CheckpointVerifier{want: make(map[int64]Checkpoint, len(cps))}
	want := KeyID(pub)
	for _, c := range cps {
		if c.KeyID != want {
			return nil, fmt.Errorf("checkpoint at seq %d was signed by key %s, not by key %s: every replica must sign with the same key (--audit-key), and a key you do not know is not a signature you can trust", c.Seq, c.KeyID, want)
		}
		if err := c.VerifySignature(pub); err != nil {
			return nil, err
		}
		v.want[c.Seq] = c
	}
	return v, nil
}

// Record checks r (a record that chains to the ones before it) against
// the checkpoint at its Seq, if any.
func (v *CheckpointVerifier) Record(r Record) *VerifyError {
	c, ok := v.want[r.Seq]
	if !ok {
		return nil
	}
	if c.Hash != r.Hash {
		return &VerifyError{Seq: r.Seq, Reason: fmt.Sprintf("its hash does not match the checkpoint signed at %s (the log up to here was rewritten)", c.Time.Format(time.RFC3339))}
	}
	v.matched++
	return nil
}

// Finish reports a checkpoint that no record matched: the log was cut
// short after it (records deleted from the end, the head moved back).
// last is the log's last record.
func (v *CheckpointVerifier) Finish(last Record) *VerifyError {
	if v.matched == len(v.want) {
		return nil
	}
	var lost int64
	for seq := range v.want {
		if seq > last.Seq && (lost == 0 || seq < lost) {
			lost = seq
		}
	}
	return &VerifyError{Seq: last.Seq + 1, Reason: fmt.Sprintf("a checkpoint signed seq %d but the log ends at seq %d (records were deleted from the end)", lost, last.Seq)}
}

// Matched returns how many checkpoints matched.
func (v *CheckpointVerifier) Matched() int { return v.matched }
