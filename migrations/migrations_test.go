package migrations_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/dynconn/dynconn/migrations"
)

// TestReleasedMigrationsUnchanged keeps released migrations append-only: a
// database migrated to version N never runs a file of version ≤ N again, so an
// edited file would give old and new databases different schemas. released.sha256
// lists every released file with its checksum; a new migration is added to it
// (sha256sum 0*.sql > released.sha256) when it is released, and never changed after.
func TestReleasedMigrationsUnchanged(t *testing.T) {
	f, err := os.Open("released.sha256")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	released := map[string]string{}
	latest := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("released.sha256: malformed line %q", sc.Text())
		}
		released[name] = sum
		latest = max(latest, name[:6])
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}

	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		b, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		got := sha256.Sum256(b)
		want, ok := released[name]
		switch {
		case ok && want != hex.EncodeToString(got[:]):
			t.Errorf("%s was changed after its release: add a new migration instead", name)
		case !ok && name[:6] <= latest:
			t.Errorf("%s is not in released.sha256 but its version is not above the released %s", name, latest)
		}
		delete(released, name)
	}
	for name := range released {
		t.Errorf("%s is listed in released.sha256 but missing", name)
	}
}
