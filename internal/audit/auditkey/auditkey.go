// Package auditkey keeps the Ed25519 key that signs the audit log's
// checkpoints (audit.Checkpoint) in PEM files: the private key in a 0600
// file beside the database, the public key beside it for verifiers.
package auditkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadOrCreate reads the Ed25519 checkpoint key at path (PEM, PKCS #8),
// creating it (mode 0600) with its public key beside it (path + ".pub",
// PEM, mode 0644) if it does not exist. created reports the creation. A
// key file that others may read is refused: whoever reads it can sign a
// rewritten log.
func LoadOrCreate(path string) (key ed25519.PrivateKey, created bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, cerr := create(path)
		if cerr == nil {
			return key, true, nil
		}
		if !errors.Is(cerr, fs.ErrExist) {
			return nil, false, cerr
		}
		// Another replica sharing the directory created it first.
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, false, fmt.Errorf("audit key %s: %w", path, err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("audit key %s: mode %04o lets others read it; chmod 600 it", path, st.Mode().Perm())
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, false, fmt.Errorf("audit key %s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, false, fmt.Errorf("audit key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, false, fmt.Errorf("audit key %s: not an Ed25519 key", path)
	}
	return ek, false, nil
}

// create writes a new key to path and its public key beside it. The key
// is written to a temporary file first and linked into place, so a
// concurrent reader never sees half a key; an existing path is
// fs.ErrExist.
func create(path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".audit-key-*")
	if err != nil {
		return nil, fmt.Errorf("audit key %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	err = f.Chmod(0o600)
	if err == nil {
		err = pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(f.Name(), path)
	}
	if errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("audit key %s: %w", path, err)
	}
	if err := WritePublic(path+".pub", key.Public().(ed25519.PublicKey)); err != nil {
		return nil, err
	}
	return key, nil
}

// WritePublic writes pub as PEM (PKIX) to path, mode 0644.
func WritePublic(path string, pub ed25519.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("audit public key: %w", err)
	}
	return nil
}

// ReadPublic reads an Ed25519 public key from a PEM file: a PUBLIC KEY
// (as WritePublic writes), or the private key file itself.
func ReadPublic(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%s: not a PEM file", path)
	}
	var k any
	switch b.Type {
	case "PUBLIC KEY":
		k, err = x509.ParsePKIXPublicKey(b.Bytes)
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		if pk, ok := k.(ed25519.PrivateKey); ok {
			k = pk.Public()
		}
	default:
		return nil, fmt.Errorf("%s: PEM block %q is not a key", path, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an Ed25519 key", path)
	}
	return pub, nil
}
