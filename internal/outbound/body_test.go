package outbound

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestCapBody(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		limit    int64
		overflow bool
	}{
		{"under the limit", "abc", 4, false},
		{"exactly the limit", "abcd", 4, false},
		{"one byte over", "abcde", 4, true},
		{"far over", strings.Repeat("x", 100), 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			b := CapBody(io.NopCloser(strings.NewReader(tt.body)), tt.limit, func() { called = true })
			got, err := io.ReadAll(b)
			if tt.overflow {
				if !errors.Is(err, ErrBodyTooLarge) || !called {
					t.Fatalf("ReadAll = %q, %v (onOverflow called: %v); want ErrBodyTooLarge and the callback", got, err, called)
				}
				return
			}
			if err != nil || string(got) != tt.body || called {
				t.Fatalf("ReadAll = %q, %v (onOverflow called: %v); want %q", got, err, called, tt.body)
			}
		})
	}
	// A reader that itself stops at the limit (as oauth2 does) still sees
	// the error, not a silently cut body.
	b := CapBody(io.NopCloser(strings.NewReader("abcde")), 4, nil)
	if _, err := io.ReadAll(io.LimitReader(b, 4)); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("a reader that stops at the limit got %v, want ErrBodyTooLarge", err)
	}
}
