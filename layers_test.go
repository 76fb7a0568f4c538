package dynconn_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/dynconn/dynconn"

// allowedImports draws the architecture: for every package of the module,
// the packages of ours it may import directly. Imports point one way, from
// cmd down to the leaves (design.md, "Layout"):
//   - the leaves (model, secret, crypto, outbound) import nothing of ours above them;
//   - store knows no HTTP, no Microsoft and no keys (no api, dynamics, crypto);
//   - dynamics knows no storage and no HTTP API (no store, api);
//   - nothing but cmd imports api.
//
// A new package must be added here, which makes its place in the house a
// decision rather than an accident.
var allowedImports = map[string][]string{
	"":                            nil, // the root package holds the OpenAPI document
	"migrations":                  nil,
	"internal/model":              nil,
	"internal/secret":             nil,
	"internal/logtest":            nil, // test support: a log buffer safe for concurrent use
	"web":                         nil, // the modal's static files
	"internal/crypto":             nil,
	"internal/credential":         nil,
	"internal/outbound":           nil,
	"internal/groupcommit":        nil,
	"internal/auth":               {"internal/secret"},
	"internal/dynamics":           {"internal/credential", "internal/model", "internal/outbound", "internal/secret"},
	"internal/dynamics/simulator": {"internal/credential", "internal/model"},
	"internal/webhook":            {"internal/outbound", "internal/secret"},
	"internal/store":              {"internal/groupcommit", "internal/model", "migrations"},
	"internal/store/storetest":    {"internal/store", "migrations"},
	"internal/rotation":           {"internal/crypto", "internal/model", "internal/store"},
	"internal/jobs": {"internal/checker", "internal/crypto", "internal/dynamics", "internal/model", "internal/secret", "internal/store",
		"internal/webhook"},
	"internal/rotation/rotationtest": {"internal/crypto", "internal/model", "internal/store"},
	"internal/checker":               {"internal/credential", "internal/crypto", "internal/dynamics", "internal/groupcommit", "internal/model", "internal/secret", "internal/store"},
	"internal/api": {"", "internal/auth", "internal/checker", "internal/credential", "internal/crypto", "internal/dynamics",
		"internal/model", "internal/secret", "internal/store", "internal/webhook", "web"},
	"cmd/devtoken":           {"internal/auth"},
	"cmd/dynamics-simulator": {"internal/dynamics/simulator"},
	"cmd/webhook-receiver":   nil, // verifies with the Standard Webhooks library, as a customer's receiver would
	"cmd/server": {"internal/api", "internal/auth", "internal/checker", "internal/credential", "internal/crypto", "internal/dynamics", "internal/jobs",
		"internal/outbound", "internal/rotation", "internal/secret", "internal/store", "internal/webhook"},
}

func TestImportsPointDown(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		seen++
		name := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		allowed, known := allowedImports[name]
		if !known {
			t.Errorf("package %q is not in allowedImports: decide which of ours it may import", name)
			continue
		}
		for _, imp := range p.Imports {
			if imp != module && !strings.HasPrefix(imp, module+"/") {
				continue
			}
			ours := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
			if !slices.Contains(allowed, ours) {
				t.Errorf("%s imports %s, which its place in allowedImports does not allow", orRoot(name), orRoot(ours))
			}
		}
	}
	if seen < len(allowedImports)/2 {
		t.Fatalf("go list saw only %d packages", seen)
	}
}

func orRoot(name string) string {
	if name == "" {
		return module
	}
	return name
}
