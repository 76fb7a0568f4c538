package crypto

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode"
)

// Environment variables read by LoadKeyring (contract).
const (
	EnvKeys        = "ENCRYPTION_KEYS"
	EnvKeysFile    = "ENCRYPTION_KEYS_FILE"
	EnvActiveKeyID = "ENCRYPTION_ACTIVE_KEY_ID"
)

// Keyring holds the KEKs the service can unwrap with, and the active one that
// wraps new data keys. It is immutable and safe for concurrent use.
type Keyring struct {
	active KEK
	byID   map[string]KEK
	ids    []string // in the order given
}

// NewKeyring returns a keyring whose active KEK is active, and which can also
// unwrap with others. This is how a KMS KEK is plugged in. Ids must be
// non-empty and unique.
func NewKeyring(active KEK, others ...KEK) (*Keyring, error) {
	if active == nil {
		return nil, errors.New("no active key")
	}
	return newKeyring(append([]KEK{active}, others...), active.ID())
}

// newKeyring builds a keyring from keks, with the one named activeID active.
func newKeyring(keks []KEK, activeID string) (*Keyring, error) {
	k := &Keyring{byID: make(map[string]KEK, len(keks))}
	for i, kek := range keks {
		if kek == nil {
			return nil, fmt.Errorf("key %d is nil", i+1)
		}
		id := kek.ID()
		if id == "" {
			return nil, fmt.Errorf("key %d has an empty id", i+1)
		}
		if _, dup := k.byID[id]; dup {
			return nil, fmt.Errorf("duplicate key id %q", id)
		}
		k.byID[id] = kek
		k.ids = append(k.ids, id)
	}
	k.active = k.byID[activeID]
	if k.active == nil {
		return nil, fmt.Errorf("active key: %w %q", ErrUnknownKey, activeID)
	}
	return k, nil
}

// ActiveID returns the id of the KEK that wraps new data keys.
func (k *Keyring) ActiveID() string { return k.active.ID() }

// Has reports whether the keyring holds a KEK with this id. Readiness uses it
// to check that every KEK named by a stored row is loaded.
func (k *Keyring) Has(id string) bool {
	_, ok := k.byID[id]
	return ok
}

// IDs returns the ids of all KEKs in the keyring, in the order they were given.
func (k *Keyring) IDs() []string { return append([]string(nil), k.ids...) }

// KEK returns the KEK with this id, or an error wrapping ErrUnknownKey that
// names the id.
func (k *Keyring) KEK(id string) (KEK, error) {
	kek, ok := k.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, id)
	}
	return kek, nil
}

// ParseKeyring parses a keyring spec: entries "id:base64-key" separated by
// commas or whitespace (so a file with one key per line works), where each key
// is 32 bytes in standard base64, padded or not, and each id is 1 to 64
// characters from [A-Za-z0-9._-], unique. A '#' starts a comment that runs to
// the end of the line. activeID names the KEK for new writes; empty means the
// first entry.
//
// Errors say which entry is wrong (by position, and by id when the id is
// valid) and never contain key material.
func ParseKeyring(spec, activeID string) (*Keyring, error) {
	keks, err := parseKeys(spec)
	if err != nil {
		return nil, err
	}
	if activeID == "" {
		activeID = keks[0].ID()
	}
	return newKeyring(keks, activeID)
}

// LoadKeyring reads the keyring from the environment through getenv: the spec
// from ENCRYPTION_KEYS, or from the file named by ENCRYPTION_KEYS_FILE
// (exactly one must be set), and the active KEK from ENCRYPTION_ACTIVE_KEY_ID
// (default: the first key). See ParseKeyring for the format. Errors name the
// variable and what is wrong with it, never key material.
func LoadKeyring(getenv func(string) string) (*Keyring, error) {
	spec, file := getenv(EnvKeys), getenv(EnvKeysFile)
	source := EnvKeys
	switch {
	case spec != "" && file != "":
		return nil, fmt.Errorf("%s and %s are both set: set only one", EnvKeys, EnvKeysFile)
	case spec == "" && file == "":
		return nil, fmt.Errorf("%s or %s must be set (make a key with: server keys generate)", EnvKeys, EnvKeysFile)
	case file != "":
		source = EnvKeysFile
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvKeysFile, err) // names the path, not the contents
		}
		spec = string(b)
	}
	activeID := getenv(EnvActiveKeyID)
	k, err := ParseKeyring(spec, activeID)
	switch {
	case errors.Is(err, ErrUnknownKey): // only the active id can be unknown
		return nil, fmt.Errorf("%s: no key with id %q in %s", EnvActiveKeyID, activeID, source)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return k, nil
}

// GenerateKey returns a fresh key as a line for ENCRYPTION_KEYS:
// "id:base64-32-bytes". The id is "k" and the UTC time to the second, e.g.
// k20261126T101500Z, so ids sort by age and say when a key was made; two keys
// made in the same second get the same id, which ParseKeyring refuses as a
// duplicate. The error is always nil today (crypto/rand cannot fail since Go
// 1.24); it is kept so callers need not change if generation ever can fail.
func GenerateKey() (string, error) {
	key := make([]byte, keySize)
	defer clear(key)
	rand.Read(key)
	id := "k" + time.Now().UTC().Format("20060102T150405Z")
	return id + ":" + base64.StdEncoding.EncodeToString(key), nil
}

// parseKeys parses the entries of a keyring spec (see ParseKeyring).
func parseKeys(spec string) ([]KEK, error) {
	var entries []string
	for line := range strings.Lines(spec) {
		line, _, _ = strings.Cut(line, "#")
		entries = append(entries, strings.FieldsFunc(line, func(r rune) bool {
			return r == ',' || unicode.IsSpace(r)
		})...)
	}
	if len(entries) == 0 {
		return nil, errors.New("no keys (want id:base64-key, comma-separated)")
	}
	keks := make([]KEK, 0, len(entries))
	for i, e := range entries {
		kek, err := parseEntry(e)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		}
		if containsID(keks, kek.ID()) {
			return nil, fmt.Errorf("entry %d: duplicate key id %q", i+1, kek.ID())
		}
		keks = append(keks, kek)
	}
	return keks, nil
}

// parseEntry parses one "id:base64-key" entry. Its errors never quote the
// entry, which may be key material pasted in the wrong place.
func parseEntry(e string) (KEK, error) {
	id, b64, ok := strings.Cut(e, ":")
	if !ok {
		return nil, errors.New("want id:base64-key, found no colon")
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil {
		// base64's error gives only an offset, but it is not needed either.
		return nil, fmt.Errorf("key %q is not valid standard base64", id)
	}
	defer clear(key)
	return NewLocalKEK(id, key)
}

// checkID returns an error if id is not a valid key id. The error does not
// quote id: an invalid one may be key material pasted in the wrong place.
func checkID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("key id is %d characters, want 1 to 64", len(id))
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return errors.New("key id may contain only A-Z a-z 0-9 . _ -")
		}
	}
	return nil
}

func containsID(keks []KEK, id string) bool {
	for _, k := range keks {
		if k.ID() == id {
			return true
		}
	}
	return false
}
