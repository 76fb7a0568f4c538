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

func TestBytesNeverShowsItsValueAndClears(t *testing.T) {
	const plain = "Abc8Q~very.secret.value"
	b := secret.Bytes(plain)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("msg", "client_secret", b)
	j, err := json.Marshal(struct{ B secret.Bytes }{b})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprintf("%x", b), fmt.Sprintf("%x", "[redacted]"); got != want {
		t.Errorf("%%x: %q, want the hex of [redacted]", got)
	}
	//lint:ignore S1025 the point is what each fmt verb prints
	verbs := map[string]string{"%v": fmt.Sprintf("%v", b), "%s": fmt.Sprintf("%s", b), "%q": fmt.Sprintf("%q", b)}
	for name, out := range map[string]string{
		"%v": verbs["%v"], "%s": verbs["%s"], "%q": verbs["%q"],
		"%#v": fmt.Sprintf("%#v", b), "%+v struct": fmt.Sprintf("%+v", struct{ B secret.Bytes }{b}), "slog": logs.String(), "json": string(j),
	} {
		if strings.Contains(out, plain) || !strings.Contains(out, "[redacted]") {
			t.Errorf("%s: %q", name, out)
		}
	}
	b.Clear()
	if !bytes.Equal(b, make([]byte, len(plain))) {
		t.Errorf("after Clear: %q", []byte(b))
	}
}
