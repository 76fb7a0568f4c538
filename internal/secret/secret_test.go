package secret_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/dynconn/dynconn/internal/secret"
)

func TestStringNeverShowsItsValue(t *testing.T) {
	const plain = "Abc8Q~very.secret.value"
	s := secret.String(plain)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("msg", "client_secret", s, "nested", struct{ S secret.String }{s})
	j, err := json.Marshal(struct{ S secret.String }{s})
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore S1025 the point is what each fmt verb prints
	verbs := map[string]string{"%v": fmt.Sprintf("%v", s), "%s": fmt.Sprintf("%s", s), "%#v": fmt.Sprintf("%#v", s)}
	for name, out := range map[string]string{
		"%v": verbs["%v"], "%s": verbs["%s"], "%#v": verbs["%#v"],
		"%+v struct": fmt.Sprintf("%+v", struct{ S secret.String }{s}), "slog": logs.String(), "json": string(j),
	} {
		if strings.Contains(out, plain) || !strings.Contains(out, "[redacted]") {
			t.Errorf("%s: %q", name, out)
		}
	}
	if s.Reveal() != plain {
		t.Error("Reveal does not return the value")
	}
}
