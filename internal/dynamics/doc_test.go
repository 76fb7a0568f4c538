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

var update = flag.Bool("update", false, "rewrite the generated tables of docs/diagnosis.md and README.md")

// TestDiagnosisDoc keeps the tables of docs/diagnosis.md and README.md equal
// to allDiagnoses() and simulator.Scenarios(). Run with -update after changing either.
func TestDiagnosisDoc(t *testing.T) {
	syncTables(t, filepath.Join("..", "..", "docs", "diagnosis.md"), map[string]string{
		"codes":     codesTable(),
		"scenarios": scenariosTable(),
	})
	syncTables(t, filepath.Join("..", "..", "README.md"), map[string]string{"codes": readmeCodesTable()})
}

// syncTables checks (or with -update rewrites) each generated section of the
// file at path, between <!-- name:begin --> and <!-- name:end -->.
func syncTables(t *testing.T, path string, sections map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	doc := string(raw)
	for name, body := range sections {
		begin, end := "<!-- "+name+":begin -->\n", "<!-- "+name+":end -->"
		i, j := strings.Index(doc, begin), strings.Index(doc, end)
		if i < 0 || j < i {
			t.Fatalf("%s: markers for %q missing", path, name)
		}
		if got := doc[i+len(begin) : j]; got != body {
			if !*update {
				t.Errorf("%s: the %s table is out of date; run go test ./internal/dynamics -run TestDiagnosisDoc -update", path, name)
				continue
			}
			doc = doc[:i+len(begin)] + body + doc[j:]
		}
	}
	if *update {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readmeCodesTable is the README's shorter table: each code with its fix.
func readmeCodesTable() string {
	var b strings.Builder
	b.WriteString("| code | setup_step | fix |\n|---|---|---|\n")
	for _, d := range allDiagnoses() {
		step := "—"
		if d.SetupStep != "" {
			step = "`" + d.SetupStep + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", d.Code, step, d.Hint)
	}
	return b.String()
}

func codesTable() string {
	var b strings.Builder
	b.WriteString("| code | setup_step | what it means | what the customer should do |\n|---|---|---|---|\n")
	for _, d := range allDiagnoses() {
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
	b.WriteString("| port | scenario | dynconn reports | Microsoft's answer | what the simulator does |\n|---|---|---|---|---|\n")
	for i, s := range simulator.Scenarios() {
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
		// The port cmd/dynamics-simulator gives the scenario with its default -addr 127.0.0.1:8443.
		fmt.Fprintf(&b, "| %d | `%s` | %s | %s | %s |\n", 8444+i, s.Name, want, answer, s.Summary)
	}
	return b.String()
}
