package dynamics

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dynconn/dynconn/internal/dynamics/simulator"
)

var update = flag.Bool("update", false, "rewrite the generated tables of docs/diagnosis.md")

// TestDiagnosisDoc keeps the tables of docs/diagnosis.md equal to Codes()
// and simulator.Scenarios(). Run with -update after changing either.
func TestDiagnosisDoc(t *testing.T) {
	path := filepath.Join("..", "..", "docs", "diagnosis.md")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	doc := string(raw)
	for _, sec := range []struct{ name, body string }{
		{"codes", codesTable()},
		{"scenarios", scenariosTable()},
	} {
		begin, end := "<!-- "+sec.name+":begin -->\n", "<!-- "+sec.name+":end -->"
		i, j := strings.Index(doc, begin), strings.Index(doc, end)
		if i < 0 || j < i {
			t.Fatalf("%s: markers for %q missing", path, sec.name)
		}
		if got := doc[i+len(begin) : j]; got != sec.body {
			if !*update {
				t.Errorf("%s: the %s table is out of date; run go test ./internal/dynamics -run TestDiagnosisDoc -update", path, sec.name)
				continue
			}
			doc = doc[:i+len(begin)] + sec.body + doc[j:]
		}
	}
	if *update {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func codesTable() string {
	var b strings.Builder
	b.WriteString("| code | setup_step | what it means | what the customer should do |\n|---|---|---|---|\n")
	for _, d := range Codes() {
		step := "null"
		if d.SetupStep != "" {
			step = "`" + d.SetupStep + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", d.Code, step, d.Message, d.Hint)
	}
	return b.String()
}

func scenariosTable() string {
	var b strings.Builder
	b.WriteString("| instance URL path | dynconn reports | Microsoft's answer | what the simulator does |\n|---|---|---|---|\n")
	for _, s := range simulator.Scenarios() {
		want := "all checks `passed`"
		if s.Code != "" {
			want = fmt.Sprintf("`%s` (%s %s)", s.Code, s.Check, s.Status)
		}
		answer := "—"
		switch {
		case s.HTTPStatus != 0 && s.MicrosoftCode != "":
			answer = fmt.Sprintf("%d %s", s.HTTPStatus, s.MicrosoftCode)
		case s.HTTPStatus != 0:
			answer = fmt.Sprint(s.HTTPStatus)
		}
		fmt.Fprintf(&b, "| `/s/%s` | %s | %s | %s |\n", s.Name, want, answer, s.Summary)
	}
	return b.String()
}
