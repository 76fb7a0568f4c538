package api

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TestMetricsLabelsStayBounded sends thousands of requests with made-up
// methods and paths, none authenticated, and checks that they add no series
// and no bytes to /metrics beyond those that one such request made.
func TestMetricsLabelsStayBounded(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(o *envConfig) { o.Metrics = NewMetrics(reg) })
	metrics := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer metrics.Close()
	send := func(method, path string) {
		t.Helper()
		req, err := http.NewRequest(method, e.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	// One of each kind, so that every series the flood can touch exists.
	send("BREW", "/connections")
	send("GET", "/no/such/path")
	send("BREW", "/no/such/path")
	send("GET", "/connections") // 401
	series, size := scrape(t, metrics.URL)
	if !slices.Contains(series, `dynconn_http_requests_total{method="OTHER",route="unmatched",status="405"}`) {
		t.Fatalf("an unknown method is not counted as OTHER; series:\n%s", strings.Join(series, "\n"))
	}

	for i := range 3000 {
		method := fmt.Sprintf("M%dX%s", i, strings.Repeat("Y", i%50))
		switch i % 3 {
		case 0:
			send(method, "/connections")
		case 1:
			send("GET", fmt.Sprintf("/x%d/%s", i, strings.Repeat("z", i%100)))
		default:
			send(method, fmt.Sprintf("/connections/%d/nothing", i))
		}
	}
	after, afterSize := scrape(t, metrics.URL)
	if !slices.Equal(series, after) {
		t.Errorf("the flood changed the series from %d to %d", len(series), len(after))
	}
	// Counts and sums grow by a few digits; new series would add lines.
	if afterSize > size+200 {
		t.Errorf("/metrics grew from %d to %d bytes", size, afterSize)
	}
}

// scrape returns the series of a /metrics page (each line's name and labels,
// without its value), sorted, and the page's size.
func scrape(t *testing.T, url string) ([]string, int) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	var series []string
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		series = append(series, name)
	}
	slices.Sort(series)
	return series, len(body)
}
