package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/auth"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	principalKey
)

// validRequestID limits which caller-supplied request ids are echoed back, so
// a header can't inject anything into logs or responses.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// requestID takes the caller's X-Request-Id when it is well-formed and makes
// one otherwise, and returns it on the response.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID.MatchString(id) {
			id = uuid.NewString()
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// accessLog writes one line per request. The account is read from a holder
// that authenticate fills in, since the principal is only known further in.
func accessLog(logger *slog.Logger, m *Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			holder := &principalHolder{}
			r = r.WithContext(context.WithValue(r.Context(), principalKey, holder))
			next.ServeHTTP(ww, r)
			route := ""
			if rc := chi.RouteContext(r.Context()); rc != nil {
				route = rc.RoutePattern()
			}
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			elapsed := time.Since(start)
			m.observeRequest(r.Method, route, strconv.Itoa(status), elapsed.Seconds())
			logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("request_id", requestIDFrom(r.Context())),
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
				slog.Int("bytes", ww.BytesWritten()),
				slog.String("account", holder.p.Account),
			)
		})
	}
}

// principalHolder lets the access log see who the caller was.
type principalHolder struct{ p auth.Principal }

// principalFrom returns the authenticated caller. Only routes behind
// authenticate call it.
func principalFrom(ctx context.Context) auth.Principal {
	h, _ := ctx.Value(principalKey).(*principalHolder)
	if h == nil {
		return auth.Principal{}
	}
	return h.p
}

// authenticate verifies the bearer token and records the principal. Every
// route behind it acts for that principal's account only.
func authenticate(logger *slog.Logger, v *auth.Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := v.Verify(r.Context(), r.Header.Get("Authorization"))
			if err != nil {
				writeProblem(w, r, logger, err)
				return
			}
			h, _ := r.Context().Value(principalKey).(*principalHolder)
			if h == nil {
				h = &principalHolder{}
				r = r.WithContext(context.WithValue(r.Context(), principalKey, h))
			}
			h.p = p
			next.ServeHTTP(w, r)
		})
	}
}

// recoverer turns a panic into a 500 problem. The panic value and stack go
// to the log only; request values are never part of them.
func recoverer(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					logger.ErrorContext(r.Context(), "panic", "request_id", requestIDFrom(r.Context()),
						"panic", fmt.Sprintf("%T", v), "stack", string(debug.Stack()))
					writeProblem(w, r, logger, fmt.Errorf("panic in handler"))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// deadline bounds each request. It only sets the context deadline: handlers
// and the store watch ctx, and problemFor turns DeadlineExceeded into a 503.
func deadline(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// noStore keeps every response out of caches: they are an account's data.
// The modal's static files replace it with their own policy.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
