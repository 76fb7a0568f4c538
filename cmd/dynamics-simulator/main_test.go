package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dynconn/dynconn/internal/credential"
	"github.com/dynconn/dynconn/internal/dynamics/simulator"
	"github.com/dynconn/dynconn/internal/logtest"
)

// TestEachScenarioHasItsOwnURL runs the command, reads the URLs it prints and
// checks that each one runs its scenario and that -addr's runs -scenario's.
func TestEachScenarioHasItsOwnURL(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &logtest.Buffer{}
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"dynamics-simulator", "-addr", "127.0.0.1:0", "-scenario", "not_dataverse"},
			func(string) string { return "" }, out, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	line := regexp.MustCompile(`(?m)^(http://127\.0\.0\.1:\d+) +(\w+) `)
	var rows [][]string
	for range 500 { // the table is printed before serving starts
		if rows = line.FindAllStringSubmatch(out.String(), -1); len(rows) == len(simulator.Scenarios()) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(rows) != len(simulator.Scenarios()) {
		t.Fatalf("printed %d scenario URLs, want %d:\n%s", len(rows), len(simulator.Scenarios()), out)
	}
	base := regexp.MustCompile(`Microsoft simulator on (\S+) `).FindStringSubmatch(out.String())
	if base == nil {
		t.Fatalf("no base URL in:\n%s", out)
	}

	probe := func(u string) int {
		t.Helper()
		resp, err := http.Get(u + "/api/data/v9.2/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	seen := map[string]bool{base[1]: true}
	for i, row := range rows {
		u, name := row[1], row[2]
		if want := simulator.Scenarios()[i].Name; name != want {
			t.Errorf("row %d is scenario %s, want %s", i, name, want)
		}
		if seen[u] {
			t.Errorf("%s is printed twice", u)
		}
		seen[u] = true
		want := http.StatusUnauthorized // the challenge
		switch {
		case name == "not_dataverse":
			want = http.StatusOK
		case strings.HasPrefix(name, "instance_") || name == "redirect":
			continue // hangs, fails or redirects at the probe
		}
		if got := probe(u); got != want {
			t.Errorf("%s (%s) probe = %d, want %d", u, name, got, want)
		}
	}
	if got := probe(base[1]); got != http.StatusOK {
		t.Errorf("-addr URL probe = %d, want 200 (scenario not_dataverse)", got)
	}

	// The printed upload command takes a certificate.
	upload := regexp.MustCompile(`curl --data-binary @dynconn-ID\.pem (\S+)`).FindStringSubmatch(out.String())
	if upload == nil {
		t.Fatalf("no upload command in:\n%s", out)
	}
	cert, _, err := credential.Generate(uuid.New(), time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(upload[1], "application/x-pem-file", bytes.NewReader(cert.PEM()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("upload as printed: %d", resp.StatusCode)
	}
}
