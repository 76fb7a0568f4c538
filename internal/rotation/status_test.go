package rotation

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/rotation/rotationtest"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

func TestReadStatus(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	st := store.New(pool)
	ctx := context.Background()
	a, b, c := rotationtest.Key("a"), rotationtest.Key("b"), rotationtest.Key("c")
	rotationtest.Seed(t, pool, rotationtest.Keyring(t, a, "a"), 3)
	rotationtest.Seed(t, pool, rotationtest.Keyring(t, b, "b"), 1)
	// A webhook's secret counts like a connection's, for status and readiness.
	rotationtest.SeedWebhooks(t, pool, rotationtest.Keyring(t, b, "b"), 1)

	read := func(keys *crypto.Keyring) Status {
		t.Helper()
		s, err := ReadStatus(ctx, st, keys)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// readinessMissing is what /readyz names (internal/api/health.go).
	readinessMissing := func(keys *crypto.Keyring) []string {
		t.Helper()
		missing, err := st.MissingKEKs(ctx, keys.Has)
		if err != nil {
			t.Fatal(err)
		}
		return missing
	}

	t.Run("a key in use is missing", func(t *testing.T) {
		keys := rotationtest.Keyring(t, b+","+c, "c")
		s := read(keys)
		want := Status{ActiveKEKID: "c", Keys: []Key{
			{ID: "a", Rows: 3, Missing: true},
			{ID: "b", Rows: 2, Loaded: true},
			{ID: "c", Loaded: true, Active: true},
		}}
		if diff := cmp.Diff(want, s); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(readinessMissing(keys), s.Missing()); diff != "" {
			t.Errorf("status and readiness disagree on missing keys (-readiness +status):\n%s", diff)
		}
		if len(s.Retirable()) != 0 || s.OldRows() != 5 {
			t.Errorf("retirable %v, old rows %d", s.Retirable(), s.OldRows())
		}
		var out bytes.Buffer
		s.Write(&out)
		for _, line := range []string{
			"a    3     NO      MISSING: add it to ENCRYPTION_KEYS",
			"b    2     yes     not active: `server keys rotate` moves its rows to the active key",
			"c    0     yes     active",
			"missing keys: [a]",
			"5 rows under old keys: run `server keys rotate`",
		} {
			if !strings.Contains(out.String(), line) {
				t.Errorf("output lacks %q:\n%s", line, out.String())
			}
		}
	})

	t.Run("after rotation the old keys can be retired", func(t *testing.T) {
		keys := rotationtest.Keyring(t, a+","+b+","+c, "c")
		if _, err := Rotate(ctx, st, keys, Options{}); err != nil {
			t.Fatal(err)
		}
		s := read(keys)
		if len(s.Missing()) != 0 || len(readinessMissing(keys)) != 0 || s.OldRows() != 0 {
			t.Errorf("missing %v, readiness missing %v, old rows %d", s.Missing(), readinessMissing(keys), s.OldRows())
		}
		if got := s.Retirable(); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("retirable %v, want [a b]", got)
		}
		var out bytes.Buffer
		s.Write(&out)
		if !strings.Contains(out.String(), "can be retired (remove from ENCRYPTION_KEYS on every replica): [a b]") {
			t.Errorf("output:\n%s", out.String())
		}
	})
}

func TestProgressLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{0, 1000, 0, "rewrapped 0/1000 rows (0%)"},
		{250, 1000, time.Second, "rewrapped 250/1000 rows (25%), 250 rows/s, about 3s left"},
		{100, 100_000, 2 * time.Second, "rewrapped 100/100000 rows (0%), 50 rows/s, about 33m18s left"},
		// Rows written under an old key meanwhile push done past the total.
		{1200, 1000, 2 * time.Second, "rewrapped 1200/1200 rows (100%), 600 rows/s, about 0s left"},
	} {
		if got := progressLine(tc.done, tc.total, tc.elapsed); got != tc.want {
			t.Errorf("progressLine(%d, %d, %v) = %q, want %q", tc.done, tc.total, tc.elapsed, got, tc.want)
		}
	}
}

func TestLineProgressWritesAtMostEverySoOften(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := newProgress(&out, 1000, time.Now())
	lp, ok := p.(*lineProgress)
	if !ok {
		t.Fatalf("a buffer got %T, want plain lines", p)
	}
	lp.every = time.Hour
	for done := int64(100); done <= 1000; done += 100 {
		p.update(done)
	}
	p.finish()
	if lines := strings.Count(out.String(), "\n"); lines != 1 || !strings.HasPrefix(out.String(), "rewrapped 100/1000 rows") {
		t.Errorf("%d lines:\n%s", lines, out.String())
	}
	if _, ok := newProgress(nil, 10, time.Now()).(noProgress); !ok {
		t.Error("a nil writer gets progress")
	}
}
