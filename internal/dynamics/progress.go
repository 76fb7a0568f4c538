package dynamics

import (
	"context"

	"github.com/dynconn/dynconn/internal/model"
)

// progressKey carries the function that Test reports each check to.
type progressKey struct{}

// WithProgress returns a context under which Test calls report with each of
// its five checks as soon as that check is decided (the ones skipped after a
// failure at the end), in order, from Test's goroutine. It lets the API stream
// a test's checks (Accept: text/event-stream) without changing how a test is
// run, coalesced or recorded: the context passes through all of that as it is.
// report must not block for long: the test waits for it.
func WithProgress(ctx context.Context, report func(model.Check)) context.Context {
	return context.WithValue(ctx, progressKey{}, report)
}

// progressFrom returns the reporter of ctx, or one that does nothing.
func progressFrom(ctx context.Context) func(model.Check) {
	if report, ok := ctx.Value(progressKey{}).(func(model.Check)); ok {
		return report
	}
	return func(model.Check) {}
}
