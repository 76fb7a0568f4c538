package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/dynconn/dynconn/internal/dynamics"
	"github.com/dynconn/dynconn/internal/model"
)

// wantsEventStream reports whether the client asked for a streamed test
// (Accept: text/event-stream). Any other Accept gets the JSON result.
func wantsEventStream(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && mt == "text/event-stream" {
			return true
		}
	}
	return false
}

// eventStream writes server-sent events, one flush per event, so that a
// proxy or the browser sees each as soon as it happens. It sends its headers
// with the first event: until then the request can still be refused with a
// problem response (an unknown connection, the rate limit). Progress is
// reported while run runs, before it returns; the mutex keeps writes whole
// should a test ever report from another goroutine.
type eventStream struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	started bool
}

// send writes one event. A client that went away makes writes fail; that is
// ignored, since the test goes on and is recorded all the same.
func (s *eventStream) send(event string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.started = true
		h := s.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no") // nginx and others: don't hold the events back
		s.w.WriteHeader(http.StatusOK)
	}
	// data is compact JSON: no newline that would end the field early.
	_, _ = fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", event, data)
	_ = http.NewResponseController(s.w).Flush()
}

// streamTest answers a test request as a stream: a `check` event with each
// check as the test decides it, then one `result` event with the whole result,
// the same JSON the plain answer holds. run performs the test (and, for a
// stored connection, records it) under the context it is given. An error
// before the first event is returned, to become a problem response; one after
// it becomes a final `error` event holding the problem document, since the
// status line is already sent.
func streamTest(w http.ResponseWriter, r *http.Request, logger *slog.Logger, run func(ctx context.Context) (json.RawMessage, error)) error {
	s := &eventStream{w: w}
	ctx := dynamics.WithProgress(r.Context(), func(ch model.Check) {
		if b, err := json.Marshal(ch); err == nil {
			s.send("check", b)
		}
	})
	result, err := run(ctx)
	switch {
	case err == nil:
		s.send("result", compactJSON(result))
		return nil
	case !s.started:
		return err
	}
	p := problemFor(r.Context(), err)
	p.RequestID = requestIDFrom(r.Context())
	logger.ErrorContext(r.Context(), "streamed test failed", "request_id", p.RequestID, "err", err)
	b, _ := json.Marshal(p)
	s.send("error", b)
	return nil
}

// compactJSON removes insignificant whitespace, so that a body fits on one
// SSE data line.
func compactJSON(b json.RawMessage) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}
