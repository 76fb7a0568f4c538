package api

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"
)

// feed pages through GET /events as account with query q, and returns the
// events and the cursor after the last.
func (e *testEnv) feed(account, q string) ([]map[string]any, string) {
	e.t.Helper()
	var all []map[string]any
	after := ""
	for {
		path := "/events?limit=2" + q
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		res := e.do("GET", path, account, nil)
		if res.status != http.StatusOK {
			e.t.Fatalf("GET %s: %d %s", path, res.status, res.body)
		}
		page := res.json(e.t)
		items := page["items"].([]any)
		next, _ := page["next_cursor"].(string)
		if len(items) == 0 {
			if next != after {
				e.t.Fatalf("an empty page moved the cursor")
			}
			return all, after
		}
		for _, it := range items {
			all = append(all, it.(map[string]any))
		}
		after = next
	}
}

// feedTypes waits until account's feed holds n events, and returns their types.
func (e *testEnv) feedTypes(account, q string, n int) []string {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		events, _ := e.feed(account, q)
		if len(events) >= n || time.Now().After(deadline) {
			out := make([]string, len(events))
			for i, ev := range events {
				out[i] = ev["type"].(string)
			}
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEventFeed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.do("POST", "/connections", "acct-a", validCreate()).json(t)["id"].(string)
	second := e.do("POST", "/connections", "acct-a", with(validCreate(), "client_id", "33333333-3333-3333-3333-333333333333")).json(t)["id"].(string)
	e.do("PATCH", "/connections/"+first, "acct-a", map[string]any{"name": "Renamed"})
	e.do("DELETE", "/connections/"+second, "acct-a", nil)
	e.do("POST", "/connections", "acct-b", validCreate())

	want := []string{"connection.created", "connection.created", "connection.updated", "connection.deleted"}
	if got := e.feedTypes("acct-a", "", 4); !slices.Equal(got, want) {
		t.Fatalf("feed = %v, want %v", got, want)
	}
	events, cursor := e.feed("acct-a", "")
	if events[0]["data"].(map[string]any)["connection_id"] != first || events[3]["data"].(map[string]any)["connection_id"] != second {
		t.Errorf("data: %v / %v", events[0]["data"], events[3]["data"])
	}
	if changed := events[2]["data"].(map[string]any)["changed"]; !slices.Equal(toStrings(changed), []string{"name"}) {
		t.Errorf("updated.changed = %v", changed)
	}
	// Polling at the end answers no events and the same cursor.
	res := e.do("GET", "/events?after="+url.QueryEscape(cursor), "acct-a", nil).json(t)
	if len(res["items"].([]any)) != 0 || res["next_cursor"] != cursor {
		t.Errorf("poll at the end: %v", res)
	}
	// Each account sees its own.
	if got := e.feedTypes("acct-b", "", 1); !slices.Equal(got, []string{"connection.created"}) {
		t.Errorf("acct-b's feed = %v", got)
	}
	// The type filter, repeated or comma-separated.
	if got := e.feedTypes("acct-a", "&type=connection.deleted&type=connection.updated", 2); !slices.Equal(got, []string{"connection.updated", "connection.deleted"}) {
		t.Errorf("filtered feed = %v", got)
	}
	if got := e.feedTypes("acct-a", "&type=connection.deleted,connection.updated", 2); len(got) != 2 {
		t.Errorf("comma-separated filter = %v", got)
	}
	if r := e.do("GET", "/events?type=connection.exploded", "acct-a", nil); r.status != http.StatusUnprocessableEntity {
		t.Errorf("unknown type: %d", r.status)
	}
	if r := e.do("GET", "/events?after=bogus", "acct-a", nil); r.status != http.StatusBadRequest {
		t.Errorf("bogus cursor: %d", r.status)
	}
	if r := e.do("GET", "/events", "", nil); r.status != http.StatusUnauthorized {
		t.Errorf("no token: %d", r.status)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
