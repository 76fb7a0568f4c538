package dynamics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dynconn/dynconn/internal/dynamics/simulator"
)

func TestToken(t *testing.T) {
	sim := newSim(t, simulator.Options{})
	c, logs := newClient(t, Options{AllowLoopback: true})
	before := time.Now()
	tok, err := c.Token(context.Background(), simCreds(sim.URL+"/main.aspx"))
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken.Reveal() == "" || tok.Resource != sim.URL ||
		tok.ExpiresAt.Before(before.Add(59*time.Minute)) || tok.ExpiresAt.After(time.Now().Add(time.Hour)) {
		t.Errorf("token for %s expiring at %v (want about an hour from now)", tok.Resource, tok.ExpiresAt)
	}
	if sim.Count("token") != 1 || sim.Count("whoami") != 0 {
		t.Errorf("token requests %d, WhoAmI %d; want 1 and none", sim.Count("token"), sim.Count("whoami"))
	}
	if strings.Contains(logs.String(), tok.AccessToken.Reveal()) || !strings.Contains(logs.String(), `"outcome":"ok"`) {
		t.Errorf("log: %s", logs.String())
	}
}

func TestTokenFailures(t *testing.T) {
	sim := newSim(t, simulator.Options{})
	c, _ := newClient(t, Options{AllowLoopback: true})
	for scenario, want := range map[string]struct {
		code       string
		retryAfter int
	}{
		"secret_expired":  {CodeClientSecretExpired, 0},
		"entra_throttled": {CodeThrottled, 10},
		"not_dataverse":   {CodeNotDataverse, 0},
	} {
		_, err := c.Token(context.Background(), simCreds(sim.InstanceURL(scenario)))
		var te *TokenError
		if !errors.As(err, &te) || te.Check.Code != want.code || te.RetryAfter() != want.retryAfter {
			t.Errorf("%s: %v, want %s with retry after %d", scenario, err, want.code, want.retryAfter)
			continue
		}
		if d := te.Diagnosis(); d.Code != want.code || d.Message == "" || d.Hint == "" {
			t.Errorf("%s: diagnosis %+v", scenario, d)
		}
	}
}
