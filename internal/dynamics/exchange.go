package dynamics

import (
	"fmt"
	"net/http"
	"net/url"
	"sync"

	"github.com/dynconn/dynconn/internal/outbound"
)

// maxBody caps every response body read from Microsoft: its real answers are
// a few KiB, and an instance URL is customer input we must not let exhaust us.
const maxBody = 1 << 20

// destination is a scheme and host:port a test may send requests to.
type destination struct{ scheme, hostport string }

// exchange is the record of one test's traffic: the destinations allowed so
// far and what the latest response looked like. The oauth2 package reports
// errors with %v, so the record is how we still learn that a body was too big.
type exchange struct {
	mu       sync.Mutex
	allowed  []destination
	overflow bool
	requests int
	// lastStatus is the status of the latest response, so an answer the
	// oauth2 package could not parse is told apart from no answer at all.
	lastStatus int
}

// takeStatus returns lastStatus and clears it for the next step.
func (x *exchange) takeStatus() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	s := x.lastStatus
	x.lastStatus = 0
	return s
}

func (x *exchange) allow(u *url.URL) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.allowed = append(x.allowed, destination{u.Scheme, outbound.CanonicalHostPort(u)})
}

func (x *exchange) isAllowed(u *url.URL) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	d := destination{u.Scheme, outbound.CanonicalHostPort(u)}
	for _, a := range x.allowed {
		if a == d {
			return true
		}
	}
	return false
}

func (x *exchange) sawOverflow() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.overflow
}

func (x *exchange) markOverflow() {
	x.mu.Lock()
	x.overflow = true
	x.mu.Unlock()
}

// guard is the per-test RoundTripper: it lets a request through only to a
// destination the test has approved (the instance, then the authority), and
// caps the response body.
type guard struct {
	base http.RoundTripper
	x    *exchange
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if !g.x.isAllowed(req.URL) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &outbound.RefusedError{Reason: fmt.Sprintf("%s://%s is not the instance or its sign-in service", req.URL.Scheme, req.URL.Host)}
	}
	g.x.mu.Lock()
	g.x.requests++
	g.x.mu.Unlock()
	resp, err := g.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	g.x.mu.Lock()
	g.x.lastStatus = resp.StatusCode
	g.x.mu.Unlock()
	resp.Body = outbound.CapBody(resp.Body, maxBody, g.x.markOverflow)
	return resp, nil
}

// httpClient returns the http.Client one test uses: the shared guarded
// transport behind the per-test guard, and no redirect to another host.
func (x *exchange) httpClient(base http.RoundTripper) *http.Client {
	return &http.Client{Transport: &guard{base: base, x: x}, CheckRedirect: outbound.SameHostRedirects}
}
