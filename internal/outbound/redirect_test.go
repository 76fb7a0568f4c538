package outbound

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestRedirects: NoRedirects hands back the 3xx itself; SameHostRedirects
// follows a redirect on the same host and refuses one to another host, in
// both cases without a request reaching the other host.
func TestRedirects(t *testing.T) {
	var otherHits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { otherHits.Add(1) }))
	t.Cleanup(other.Close)
	mux := http.NewServeMux()
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, other.URL, http.StatusFound) })
	mux.HandleFunc("/here", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/done", http.StatusFound) })
	mux.HandleFunc("/done", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	tr := NewTransport(Options{AllowLoopback: true})
	t.Cleanup(tr.CloseIdleConnections)

	none := &http.Client{Transport: tr, CheckRedirect: NoRedirects}
	resp, err := none.Get(srv.URL + "/here")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("NoRedirects: status %d, want 302", resp.StatusCode)
	}

	same := &http.Client{Transport: tr, CheckRedirect: SameHostRedirects}
	resp, err = same.Get(srv.URL + "/here")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("SameHostRedirects on the same host: status %d, want 204", resp.StatusCode)
	}
	_, err = same.Get(srv.URL + "/away")
	var re *RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("SameHostRedirects to another host: %v, want a RefusedError", err)
	}
	if n := otherHits.Load(); n != 0 {
		t.Fatalf("the other host got %d requests, want 0", n)
	}
}
