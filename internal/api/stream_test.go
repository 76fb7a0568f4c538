package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dynconn/dynconn/internal/model"
)

// sseEvent is one server-sent event.
type sseEvent struct{ name, data string }

// readEvents returns the events of an SSE body as they arrive, and closes
// the channel at the end of the body.
func readEvents(t *testing.T, res *http.Response) <-chan sseEvent {
	t.Helper()
	ch := make(chan sseEvent)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return ch
}

func streamRequest(t *testing.T, e *testEnv, ctx context.Context, path string, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token(t, "acct-a"))
	req.Header.Set("Accept", "text/event-stream")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

// TestStreamedTest: with Accept: text/event-stream a stored connection's test
// sends each check while the test still runs (the simulator holds the token
// request for a while, and the result is not stored yet when the first checks
// arrive), then the result, which is exactly what was stored.
func TestStreamedTest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *envConfig) { o.sim.SlowDelay = time.Second })
	id := e.do("POST", "/connections", "acct-a", e.simCreate("slow")).json(t)["id"].(string)

	res := streamRequest(t, e, context.Background(), "/connections/"+id+"/test", "")
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" ||
		res.Header.Get("X-Accel-Buffering") != "no" || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d, headers %v", res.StatusCode, res.Header)
	}
	events := readEvents(t, res)
	var checks []model.Check
	for ev := range events {
		switch ev.name {
		case "check":
			var ch model.Check
			if err := json.Unmarshal([]byte(ev.data), &ch); err != nil {
				t.Fatalf("check event %q: %v", ev.data, err)
			}
			checks = append(checks, ch)
			if ch.Name == model.CheckTenantDiscovery {
				// The token step is still waiting at the simulator.
				if last := e.do("GET", "/connections/"+id, "acct-a", nil).json(t)["last_test"]; last != nil {
					t.Errorf("the result was stored before tenant_discovery's event arrived: %v", last)
				}
			}
		case "result":
			var stored map[string]any
			got := e.do("GET", "/connections/"+id, "acct-a", nil).json(t)["last_test"]
			if err := json.Unmarshal([]byte(ev.data), &stored); err != nil {
				t.Fatalf("result event %q: %v", ev.data, err)
			}
			want, _ := json.Marshal(got)
			have, _ := json.Marshal(stored)
			if string(want) != string(have) {
				t.Errorf("streamed result differs from the stored one:\nstreamed %s\nstored   %s", have, want)
			}
			if stored["ok"] != true {
				t.Errorf("result %s, want ok", ev.data)
			}
		default:
			t.Errorf("unexpected event %q: %s", ev.name, ev.data)
		}
	}
	var names []string
	for _, ch := range checks {
		names = append(names, ch.Name)
	}
	if want := "instance_url tenant_discovery token whoami security_role"; strings.Join(names, " ") != want {
		t.Errorf("check events %v, want %s", names, want)
	}
}

// TestStreamedTestRefusalsStayProblems: a refusal before the test starts is
// the usual problem response, not a stream.
func TestStreamedTestRefusalsStayProblems(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := streamRequest(t, e, context.Background(), "/connections/00000000-0000-4000-8000-000000000000/test", "")
	if res.StatusCode != http.StatusNotFound || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("unknown connection: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	res = streamRequest(t, e, context.Background(), "/connection-tests", `{"instance_url":"nope"}`)
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("invalid body: %d", res.StatusCode)
	}
}

// TestStreamedCredentialsTest: POST /connection-tests streams too, and
// stores nothing.
func TestStreamedCredentialsTest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body, _ := json.Marshal(e.simCreate("secret_invalid"))
	res := streamRequest(t, e, context.Background(), "/connection-tests", string(body))
	var names []string
	var result model.TestResult
	for ev := range readEvents(t, res) {
		names = append(names, ev.name)
		if ev.name == "result" {
			if err := json.Unmarshal([]byte(ev.data), &result); err != nil {
				t.Fatal(err)
			}
		}
	}
	if strings.Join(names, " ") != "check check check check check result" {
		t.Errorf("events %v", names)
	}
	if result.Error == nil || result.Error.Code != "client_secret_invalid" {
		t.Errorf("result %+v, want client_secret_invalid", result)
	}
}

// TestStreamedTestOutlivesItsClient: a client that goes away after the first
// event cancels nothing that must be recorded: the result is still stored.
func TestStreamedTestOutlivesItsClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *envConfig) { o.sim.SlowDelay = time.Second })
	id := e.do("POST", "/connections", "acct-a", e.simCreate("slow")).json(t)["id"].(string)
	ctx, cancel := context.WithCancel(context.Background())
	res := streamRequest(t, e, ctx, "/connections/"+id+"/test", "")
	<-readEvents(t, res) // instance_url
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if last := e.do("GET", "/connections/"+id, "acct-a", nil).json(t)["last_test"]; last != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Error("the test of a client that went away was not recorded")
}
