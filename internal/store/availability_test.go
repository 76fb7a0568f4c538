package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dynconn/dynconn/internal/logtest"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

func TestUnavailable(t *testing.T) {
	t.Parallel()
	live := context.Background()
	done, cancel := context.WithDeadline(live, time.Now().Add(-time.Second))
	defer cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"nil", live, nil, false},
		{"admin shutdown", live, fmt.Errorf("select: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"starting up", live, &pgconn.PgError{Code: "57P03"}, true},
		{"statement timeout", live, &pgconn.PgError{Code: "57014"}, true},
		{"connection failure", live, &pgconn.PgError{Code: "08006"}, true},
		{"too many connections", live, &pgconn.PgError{Code: "53300"}, true},
		{"unique violation", live, &pgconn.PgError{Code: "23505"}, false},
		{"undefined table", live, &pgconn.PgError{Code: "42P01"}, false},
		{"broken connection", live, fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"network error", live, &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, true},
		{"pool wait ran out", live, fmt.Errorf("select: %w", context.DeadlineExceeded), true},
		{"the caller's deadline", done, context.DeadlineExceeded, false},
		{"a bug", live, errors.New("cannot scan"), false},
		{"no rows", live, pgx.ErrNoRows, false},
	} {
		if got := store.Unavailable(tc.ctx, tc.err); got != tc.want {
			t.Errorf("%s: Unavailable = %t, want %t", tc.name, got, tc.want)
		}
	}
}

// TestUnavailableAfterAdminShutdown checks the error of a connection that
// the server terminated (what a fast shutdown does to every session).
func TestUnavailableAfterAdminShutdown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := storetest.URL(t)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	admin, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var terminated bool
	if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend($1, 5000)`, conn.PgConn().PID()).Scan(&terminated); err != nil || !terminated {
		t.Fatalf("pg_terminate_backend: %v %v", terminated, err)
	}
	_, err = conn.Exec(ctx, `SELECT 1`)
	if err == nil {
		t.Fatal("a terminated session still answered")
	}
	if !store.Unavailable(ctx, err) {
		t.Errorf("Unavailable(%v) = false", err)
	}
}

// TestOutageIsLoggedOnce cuts the store off its database, makes calls that
// fail, restores it, and checks that the calls fail as Unavailable, that the
// store serves again by itself, and that the log tells the outage once.
func TestOutageIsLoggedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	proxy := storetest.NewProxy(t, storetest.URL(t))
	logs := &logtest.Buffer{}
	s, err := store.Open(ctx, proxy.URL(), slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := create(t, s, newConnection(account))
	id := uuid.MustParse(c.ID)

	proxy.Cut()
	for range 20 {
		_, err := s.Connection(ctx, account, id)
		if !store.Unavailable(ctx, err) {
			t.Fatalf("during the outage: %v, want an error that Unavailable recognises", err)
		}
	}
	proxy.Restore()
	var served time.Time
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(50 * time.Millisecond) {
		if _, err := s.Connection(ctx, account, id); err == nil {
			if served.IsZero() {
				served = time.Now()
			}
			// The end of the outage is logged once a second has passed
			// without a failure.
			if time.Since(served) > 1500*time.Millisecond {
				break
			}
		} else if !store.Unavailable(ctx, err) {
			t.Fatalf("after the outage: %v", err)
		}
	}
	if served.IsZero() {
		t.Fatal("the store did not serve again within 10s of the database coming back")
	}
	out := logs.String()
	if n := strings.Count(out, `"msg":"database unavailable`); n != 1 {
		t.Errorf("the log tells the start of the outage %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out, `"msg":"database available again"`); n != 1 {
		t.Errorf("the log tells the end of the outage %d times, want once:\n%s", n, out)
	}
}

// TestAcquireWaitIsBounded holds every pooled connection and checks that
// another call gives up after AcquireTimeout, as Unavailable, instead of
// waiting for the caller's deadline.
func TestAcquireWaitIsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := store.Open(ctx, storetest.URL(t)+"&pool_max_conns=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	held, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	callCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = s.Ping(callCtx)
	if err == nil || !store.Unavailable(callCtx, err) {
		t.Fatalf("Ping with the pool exhausted: %v, want an error that Unavailable recognises", err)
	}
	if callCtx.Err() != nil {
		t.Fatal("the call waited for its own deadline")
	}
}
