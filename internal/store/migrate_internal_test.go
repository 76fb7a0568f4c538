package store

import (
	"testing"
	"testing/fstest"
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
