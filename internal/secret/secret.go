// Package secret holds types for values that must never be printed, logged
// or marshalled by accident: client secrets, signing keys, key material.
package secret

import "log/slog"

// String is a secret value. It prints and logs as "[redacted]"; call Reveal at
// the one place that needs the plaintext.
//
// encoding/json ignores String(), so a String must never sit in a response type;
// MarshalJSON makes that mistake visible instead of leaking the value.
type String string

const redacted = "[redacted]"

// LogValue implements slog.LogValuer.
func (String) LogValue() slog.Value { return slog.StringValue(redacted) }

// String implements fmt.Stringer.
func (String) String() string { return redacted }

// GoString implements fmt.GoStringer, so %#v does not reveal it either.
func (String) GoString() string { return redacted }

// MarshalJSON writes "[redacted]": a secret that reaches an encoder by mistake
// stays secret.
func (String) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// Reveal returns the plaintext.
func (s String) Reveal() string { return string(s) }

// IsEmpty reports whether the secret is the empty string.
func (s String) IsEmpty() bool { return s == "" }

var _ slog.LogValuer = String("")

// Bytes is a secret held as bytes, so that whoever holds it can clear it when
// done (Clear); a string cannot be cleared. Like String it prints, logs and
// marshals as "[redacted]".
type Bytes []byte

// LogValue implements slog.LogValuer.
func (Bytes) LogValue() slog.Value { return slog.StringValue(redacted) }

// String implements fmt.Stringer; fmt uses it for %v, %s, %q and %x alike.
func (Bytes) String() string { return redacted }

// GoString implements fmt.GoStringer.
func (Bytes) GoString() string { return redacted }

// MarshalJSON writes "[redacted]".
func (Bytes) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// Clear overwrites the bytes with zeros. Copies made from them (a string
// that a library insisted on) are beyond its reach.
func (b Bytes) Clear() { clear(b) }

var _ slog.LogValuer = Bytes(nil)
