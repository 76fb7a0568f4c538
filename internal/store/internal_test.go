package store

import (
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"
)

func TestLatestVersion(t *testing.T) {
	fsys := fstest.MapFS{
		"000001_a.up.sql":   {},
		"000001_a.down.sql": {},
		"000012_b.up.sql":   {},
		"000012_b.down.sql": {},
		"000003_c.up.sql":   {},
		"README.md":         {},
		"migrations.go":     {},
	}
	if got := latestVersion(fsys); got != 12 {
		t.Errorf("latestVersion = %d, want 12", got)
	}
}

func TestLatestVersionPanicsWithoutMigrations(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	latestVersion(fstest.MapFS{"README.md": {}})
}

func TestCursorRoundTrip(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 890123000, time.FixedZone("x", 3600))
	id := uuid.NewString()
	gotAt, gotID, err := decodeCursor(encodeCursor(at, id))
	if err != nil || !gotAt.Equal(at) || gotID != id {
		t.Errorf("got %v, %q, %v; want %v, %q, nil", gotAt, gotID, err, at, id)
	}
}

func TestPageLimit(t *testing.T) {
	for in, want := range map[int]int{0: DefaultLimit, -5: 1, 1: 1, 37: 37, MaxLimit: MaxLimit, MaxLimit + 1: MaxLimit} {
		if got := (Page{Limit: in}).limit(); got != want {
			t.Errorf("Page{Limit: %d}.limit() = %d, want %d", in, got, want)
		}
	}
}
