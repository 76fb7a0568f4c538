package store_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

func TestConnectionsPagination(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()

	// Seven rows; three share one created_at, so only the id orders them.
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var want []string
	for _, offset := range []int{0, 1, 1, 1, 2, 3, 4} {
		c := newConnection(account)
		c.CreatedAt = base.Add(time.Duration(offset) * time.Microsecond)
		create(t, s, c)
		want = append(want, fmt.Sprintf("%d/%s", offset, c.ID))
	}
	create(t, s, newConnection(other)) // must not show up
	slices.Sort(want)                  // offset, then id: the order Connections promises

	var got []string
	cursor := ""
	for page := 0; ; page++ {
		items, next, err := s.Connections(ctx, account, store.Page{Limit: 3, Cursor: cursor}, store.Filter{})
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		if wantLen := min(3, 7-3*page); len(items) != wantLen {
			t.Fatalf("page %d has %d items, want %d", page, len(items), wantLen)
		}
		for _, c := range items {
			if c.Account != account {
				t.Fatalf("page %d lists another account's connection %s", page, c.ID)
			}
			got = append(got, fmt.Sprintf("%d/%s", c.CreatedAt.Sub(base).Microseconds(), c.ID))
		}
		if next == "" {
			if page != 2 {
				t.Fatalf("next cursor empty after page %d, want after page 2", page)
			}
			break
		}
		if page == 2 {
			t.Fatalf("page 2 (the last) has next cursor %q", next)
		}
		cursor = next
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows over all pages (-want +got):\n%s", diff)
	}

	t.Run("exactly one full page has no next cursor", func(t *testing.T) {
		items, next, err := s.Connections(ctx, account, store.Page{Limit: 7}, store.Filter{})
		if err != nil || len(items) != 7 || next != "" {
			t.Errorf("got %d items, next %q, err %v; want 7, \"\", nil", len(items), next, err)
		}
	})

	t.Run("zero limit means the default", func(t *testing.T) {
		items, _, err := s.Connections(ctx, account, store.Page{}, store.Filter{})
		if err != nil || len(items) != 7 {
			t.Errorf("got %d items, err %v; want 7, nil", len(items), err)
		}
	})

	t.Run("account without connections gets an empty page", func(t *testing.T) {
		items, next, err := s.Connections(ctx, "nobody", store.Page{Limit: 3}, store.Filter{})
		if err != nil || len(items) != 0 || next != "" {
			t.Errorf("got %v, %q, %v; want no items, \"\", nil", items, next, err)
		}
	})
}

func TestConnectionsInvalidCursor(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, cursor := range map[string]string{
		"not base64":       "!!!",
		"no separator":     enc("2025-01-01T00:00:00Z"),
		"bad time":         enc("yesterday|" + uuid.NewString()),
		"bad id":           enc("2025-01-01T00:00:00Z|42"),
		"padded base64":    base64.URLEncoding.EncodeToString([]byte("2025-01-01T00:00:00.1Z|" + uuid.NewString())),
		"sql in the id":    enc("2025-01-01T00:00:00Z|' OR 1=1 --"),
		"empty both parts": enc("|"),
	} {
		t.Run(name+" returns ErrInvalidCursor", func(t *testing.T) {
			_, _, err := s.Connections(context.Background(), account, store.Page{Limit: 3, Cursor: cursor}, store.Filter{})
			if !errors.Is(err, store.ErrInvalidCursor) {
				t.Errorf("err = %v, want ErrInvalidCursor", err)
			}
		})
	}
}
