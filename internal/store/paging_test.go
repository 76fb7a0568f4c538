package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestCursorRoundTrip(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 890123000, time.FixedZone("x", 3600))
	id := uuid.New()
	gotAt, gotID, err := decodeCursor(encodeCursor(at, id.String()))
	if err != nil || !gotAt.Equal(at) || gotID != id {
		t.Errorf("got %v, %v, %v; want %v, %v, nil", gotAt, gotID, err, at, id)
	}
}

func TestPageLimit(t *testing.T) {
	for in, want := range map[int]int{0: DefaultLimit, -5: 1, 1: 1, 37: 37, MaxLimit: MaxLimit, MaxLimit + 1: MaxLimit} {
		if got := (Page{Limit: in}).limit(); got != want {
			t.Errorf("Page{Limit: %d}.limit() = %d, want %d", in, got, want)
		}
	}
}

func TestCut(t *testing.T) {
	last := func(n int) string { return fmt.Sprint("after ", n) }
	for _, tc := range []struct {
		rows, limit int
		wantLen     int
		wantNext    string
	}{
		{0, 3, 0, ""},
		{3, 3, 3, ""},        // a full last page
		{4, 3, 3, "after 3"}, // the extra row: a next page from the page's last row
		{201, 200, 200, "after 200"},
	} {
		rows := make([]int, tc.rows)
		for i := range rows {
			rows[i] = i + 1
		}
		got, next := cut(rows, tc.limit, last)
		if len(got) != tc.wantLen || next != tc.wantNext {
			t.Errorf("cut(%d rows, %d) = %d rows, %q; want %d, %q", tc.rows, tc.limit, len(got), next, tc.wantLen, tc.wantNext)
		}
	}
}
