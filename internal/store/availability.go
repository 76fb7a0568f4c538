package store

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// What happens while PostgreSQL cannot be reached: the pool keeps trying to
// connect, each call fails fast with an error that Unavailable recognises
// (the API answers 503 with Retry-After), and the health tracer below logs
// the outage once when it starts and once when it ends.

// AcquireTimeout bounds how long a call waits for a pooled connection when
// every one is busy. Waiting longer would only pile up requests behind a
// database that is not keeping up; failing lets the caller retry.
const AcquireTimeout = 2 * time.Second

// connectTimeout bounds a connection attempt when DATABASE_URL sets no
// connect_timeout. The pool finishes attempts in the background even after
// the caller has given up, and each one holds a place in the pool, so an
// attempt to an address that never answers must not last pgx's default of
// two minutes: the pool would stay full that long after the database is back.
const connectTimeout = 5 * time.Second

// quietPeriod is how long the database must have gone without an
// availability error before a success counts as the end of the outage, so
// that a database that fails every other call is one outage, not many.
const quietPeriod = time.Second

// Unavailable reports whether err, returned by a Store method called with
// ctx, means that the database cannot serve right now, as opposed to a fault
// in the request or in dynconn: it could not be reached or the connection
// broke, it is shutting down or starting up, it is out of connections or
// resources, a statement ran into statement_timeout, or every pooled
// connection stayed busy for AcquireTimeout (a deadline while ctx itself is
// still live: the only shorter deadline the store sets).
func Unavailable(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ctx.Err() == nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return unavailableCode(pgErr.Code)
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// unavailableCode reports whether a SQLSTATE says the server cannot serve
// now: class 08 (connection exception), 53 (insufficient resources, such as
// too many connections) or 57 (operator intervention: admin or crash
// shutdown, starting up, a statement cancelled by statement_timeout).
func unavailableCode(code string) bool {
	return strings.HasPrefix(code, "08") || strings.HasPrefix(code, "53") || strings.HasPrefix(code, "57")
}

// health watches every connect, acquire and statement of a pool (it is the
// pool's pgx tracer) and logs when the database becomes unavailable and when
// it is back. It also bounds the wait for a pooled connection.
type health struct {
	logger *slog.Logger
	down   atomic.Bool // read on every statement, so without the lock

	mu          sync.Mutex
	since       time.Time // when the outage began
	lastFailure time.Time
	failures    int // calls that failed for want of the database during the outage
}

var (
	_ pgx.QueryTracer       = (*health)(nil)
	_ pgx.ConnectTracer     = (*health)(nil)
	_ pgxpool.AcquireTracer = (*health)(nil)
)

// errPoolBusy is the cause of an acquire that waited AcquireTimeout.
var errPoolBusy = errors.New("every pooled connection stayed busy for " + AcquireTimeout.String())

type acquireCancelKey struct{}

// TraceAcquireStart gives the acquire its own deadline, AcquireTimeout.
func (h *health) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	ctx, cancel := context.WithTimeoutCause(ctx, AcquireTimeout, errPoolBusy)
	return context.WithValue(ctx, acquireCancelKey{}, cancel)
}

// TraceAcquireEnd releases the acquire's deadline and counts a wait that ran
// out (rather than the caller's own deadline) as the database not keeping up.
func (h *health) TraceAcquireEnd(ctx context.Context, _ *pgxpool.Pool, data pgxpool.TraceAcquireEndData) {
	busy := data.Err != nil && errors.Is(context.Cause(ctx), errPoolBusy)
	if cancel, ok := ctx.Value(acquireCancelKey{}).(context.CancelFunc); ok {
		cancel()
	}
	if busy {
		h.failed(errPoolBusy)
	}
}

// TraceConnectStart implements pgx.ConnectTracer.
func (*health) TraceConnectStart(ctx context.Context, _ pgx.TraceConnectStartData) context.Context {
	return ctx
}

// TraceConnectEnd records whether a new connection could be made.
func (h *health) TraceConnectEnd(ctx context.Context, data pgx.TraceConnectEndData) {
	h.record(ctx, data.Err)
}

// TraceQueryStart implements pgx.QueryTracer.
func (*health) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

// TraceQueryEnd records whether the database answered a statement.
func (h *health) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	h.record(ctx, data.Err)
}

// record counts the outcome of a call: nil, or an error the database
// answered with (a constraint violation, say), shows that it serves; a
// cancelled or expired caller says nothing either way.
func (h *health) record(ctx context.Context, err error) {
	switch {
	case err == nil:
		h.served()
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
	case Unavailable(ctx, err):
		h.failed(err)
	default:
		h.served()
	}
}

// failed records a call that failed for want of the database, and logs the
// start of an outage.
func (h *health) failed(err error) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastFailure = now
	if h.down.Load() {
		h.failures++
		return
	}
	h.down.Store(true)
	h.since, h.failures = now, 1
	h.logger.Error("database unavailable: calls that need it fail until it is back", "err", err)
}

// served records a call the database answered, and logs the end of an
// outage once quietPeriod has passed without a failure.
func (h *health) served() {
	if !h.down.Load() {
		return
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down.Load() || now.Sub(h.lastFailure) < quietPeriod {
		return
	}
	h.down.Store(false)
	h.logger.Info("database available again", "outage", now.Sub(h.since).Round(time.Millisecond).String(), "failed_calls", h.failures)
}
