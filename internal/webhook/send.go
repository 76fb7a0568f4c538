package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dynconn/dynconn/internal/outbound"
	"github.com/dynconn/dynconn/internal/secret"
)

// Defaults for Options.
const (
	// DefaultTimeout is the contract's bound on an attempt: a 2xx within it
	// is delivered.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxBody is how much of an answer is read (and discarded) before
	// the connection is dropped: enough for any acknowledgement.
	DefaultMaxBody = 64 << 10
)

// userAgent tells receivers who is calling.
const userAgent = "dynconn-webhooks/1"

// Options configure a Sender. The zero value is the production setting.
type Options struct {
	// Outbound is the address guard (set AllowLoopback from
	// WEBHOOK_ALLOW_LOOPBACK).
	Outbound outbound.Options
	// Timeout bounds one attempt, from dial to the end of the answer's
	// headers and body (default DefaultTimeout).
	Timeout time.Duration
	// MaxBody is how much of an answer is read (default DefaultMaxBody).
	MaxBody int64
	// Now is the clock of webhook-timestamp (default time.Now).
	Now func() time.Time
}

// Sender makes delivery attempts. It is safe for concurrent use; create one
// per process so connections to receivers are reused.
type Sender struct {
	hc      *http.Client
	timeout time.Duration
	maxBody int64
	now     func() time.Time
}

// NewSender returns a Sender with opts' zero fields set to their defaults.
func NewSender(opts Options) *Sender {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Sender{
		hc:      &http.Client{Transport: outbound.NewTransport(opts.Outbound), CheckRedirect: outbound.NoRedirects},
		timeout: opts.Timeout,
		maxBody: opts.MaxBody,
		now:     opts.Now,
	}
}

// CloseIdleConnections closes the connections kept open to receivers.
func (s *Sender) CloseIdleConnections() { s.hc.CloseIdleConnections() }

// Message is what one delivery carries.
type Message struct {
	// ID is the event id: the webhook-id header, the same on every attempt,
	// so receivers can drop duplicates.
	ID string
	// Body is the event JSON, sent and signed byte for byte.
	Body []byte
}

// Result is the outcome of one attempt.
type Result struct {
	// Status is the receiver's HTTP status; 0 when no answer came.
	Status int
	// Duration is how long the attempt took.
	Duration time.Duration
	// Error says briefly why the attempt did not deliver; "" when it did. It
	// never holds the URL (which may carry a token) or the secret.
	Error string
}

// Delivered reports whether the receiver took the message: a 2xx in time.
func (r Result) Delivered() bool { return r.Error == "" }

// Gone reports whether the receiver answered 410: the endpoint is to be
// disabled.
func (r Result) Gone() bool { return r.Status == http.StatusGone }

// Send makes one attempt to POST msg to endpoint, signed with s.
func (s *Sender) Send(ctx context.Context, endpoint string, sec secret.String, msg Message) Result {
	start := time.Now()
	res := s.send(ctx, endpoint, sec, msg)
	res.Duration = time.Since(start)
	return res
}

func (s *Sender) send(ctx context.Context, endpoint string, sec secret.String, msg Message) Result {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ts := s.now()
	sig, err := Sign(sec, msg.ID, ts, msg.Body)
	if err != nil {
		return Result{Error: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(msg.Body))
	if err != nil {
		return Result{Error: "the endpoint URL cannot be used"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderID, msg.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)
	resp, err := s.hc.Do(req)
	if err != nil {
		return Result{Error: s.describe(ctx, err)}
	}
	// Read what the receiver says, up to a cap, so the connection can be
	// reused; past the cap, Close drops it.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, s.maxBody))
	resp.Body.Close()
	res := Result{Status: resp.StatusCode}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		res.Error = fmt.Sprintf("HTTP %d: redirects are not followed", resp.StatusCode)
	default:
		res.Error = fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	return res
}

// describe turns a failed request into a short reason without the URL.
func (s *Sender) describe(ctx context.Context, err error) string {
	var refused *outbound.RefusedError
	var dnsErr *net.DNSError
	var urlErr *url.Error
	switch {
	case errors.As(err, &refused):
		return refused.Error()
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Sprintf("no answer within %s", s.timeout)
	case errors.As(err, &dnsErr):
		return shorten(dnsErr.Error())
	case errors.As(err, &urlErr):
		return shorten(urlErr.Err.Error()) // url.Error's text repeats the URL
	}
	return shorten(err.Error())
}

// maxError bounds Result.Error, which is stored with every attempt.
const maxError = 300

func shorten(s string) string {
	if len(s) <= maxError {
		return s
	}
	return strings.ToValidUTF8(s[:maxError], "") + "…"
}
