package dynamics

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dynconn/dynconn/internal/dynamics/simulator"
	"github.com/dynconn/dynconn/internal/model"
)

// verifyNoLeaks checks, after every cleanup of the test has run (simulator
// closed, idle connections closed), that the test left no goroutine behind.
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// TestFaults: hanging, oversized, throttled and failing answers each end in
// a classified result, inside the deadline, with nothing left running.
func TestFaults(t *testing.T) {
	tests := []struct {
		scenario string
		opts     Options
		sim      simulator.Options
		check    string
		code     string
		detail   string
	}{
		{"token_hang", Options{StepTimeout: 200 * time.Millisecond}, simulator.Options{},
			model.CheckToken, CodeMicrosoftTimeout, "No answer within 200ms."},
		{"whoami_hang", Options{StepTimeout: 200 * time.Millisecond}, simulator.Options{},
			model.CheckWhoAmI, CodeMicrosoftTimeout, "No answer within 200ms."},
		{"instance_hang", Options{StepTimeout: 200 * time.Millisecond}, simulator.Options{},
			model.CheckTenantDiscovery, CodeInstanceUnreachable, "No answer within 200ms."},
		{"slow", Options{StepTimeout: 10 * time.Second, Deadline: 300 * time.Millisecond}, simulator.Options{SlowDelay: time.Hour},
			model.CheckToken, CodeMicrosoftTimeout, "No answer within the test's 300ms deadline."},
		{"token_oversized", Options{}, simulator.Options{}, model.CheckToken, CodeResponseTooLarge, ""},
		{"whoami_oversized", Options{}, simulator.Options{}, model.CheckWhoAmI, CodeResponseTooLarge, ""},
		{"throttled", Options{}, simulator.Options{}, model.CheckWhoAmI, CodeThrottled, ""},
		{"entra_throttled", Options{}, simulator.Options{}, model.CheckToken, CodeThrottled, ""},
		{"unavailable", Options{}, simulator.Options{}, model.CheckWhoAmI, CodeMicrosoftUnavailable, ""},
		{"entra_unavailable", Options{}, simulator.Options{}, model.CheckToken, CodeMicrosoftUnavailable, ""},
		{"instance_unavailable", Options{}, simulator.Options{}, model.CheckTenantDiscovery, CodeMicrosoftUnavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			verifyNoLeaks(t)
			tt.sim.Scenario = tt.scenario
			sim := newSim(t, tt.sim)
			tt.opts.AllowLoopback = true
			c, _ := newClient(t, tt.opts)
			res := c.Test(context.Background(), simCreds(sim.URL))
			ch := checkNamed(t, res, tt.check)
			if ch.Status != model.CheckFailed || ch.Code != tt.code {
				t.Fatalf("%s = %+v, want %s", tt.check, ch, tt.code)
			}
			if tt.detail != "" && ch.Detail != tt.detail {
				t.Errorf("detail = %q, want %q", ch.Detail, tt.detail)
			}
			if res.Error == nil || res.Error.Code != tt.code || res.Error.SetupStep != nil {
				t.Errorf("error = %+v, want %s with no setup step", res.Error, tt.code)
			}
		})
	}
}
