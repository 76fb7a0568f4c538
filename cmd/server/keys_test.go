package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dynconn/dynconn/internal/rotation/rotationtest"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// buildServer builds this command into a temporary directory, so a test can
// signal a real process.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "server")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// seededDB returns the URL of a fresh database holding n connections whose
// secrets are sealed under the key line spec (active key id), a pool on
// it, and what each secret must open to.
func seededDB(t *testing.T, spec, id string, n int) (string, *pgxpool.Pool, map[string]rotationtest.Secret) {
	t.Helper()
	dbURL := storetest.URL(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return dbURL, pool, rotationtest.Seed(t, pool, rotationtest.Keyring(t, spec, id), n)
}

// serverRun is one finished run of the built server.
type serverRun struct {
	stdout, stderr string
	exitCode       int
}

func runServer(t *testing.T, bin string, env []string, args ...string) serverRun {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("server %s: %v", strings.Join(args, " "), err)
	}
	return serverRun{stdout: stdout.String(), stderr: stderr.String(), exitCode: cmd.ProcessState.ExitCode()}
}

// keysEnv is the environment of `server keys`: no AUTH_* variables, since
// the keys commands must not need them.
func keysEnv(dbURL, keys, active string) []string {
	return []string{"DATABASE_URL=" + dbURL, "ENCRYPTION_KEYS=" + keys, "ENCRYPTION_ACTIVE_KEY_ID=" + active}
}

// TestKeysRotateSurvivesSIGKILL runs the real binary through the runbook:
// status with the old key missing fails, a dry run changes nothing, a
// rotation is killed with SIGKILL at a random point, a second one finishes,
// and status then says the old key can be retired. Every secret opens under
// the new key alone and equals what was stored.
func TestKeysRotateSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	bin := buildServer(t)
	oldKey, newKey := rotationtest.Key("k-old"), rotationtest.Key("k-new")
	const total, batch = 3000, 10
	dbURL, pool, want := seededDB(t, oldKey, "k-old", total)
	both := keysEnv(dbURL, oldKey+","+newKey, "k-new")

	t.Run("status fails while a key in use is missing", func(t *testing.T) {
		r := runServer(t, bin, keysEnv(dbURL, newKey, "k-new"), "keys", "status")
		if r.exitCode != 1 || !regexp.MustCompile(`(?m)^k-old +3000 +NO +MISSING`).MatchString(r.stdout) ||
			!strings.Contains(r.stderr, "not loaded: k-old") {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", r.exitCode, r.stdout, r.stderr)
		}
	})
	t.Run("dry run counts and changes nothing", func(t *testing.T) {
		r := runServer(t, bin, both, "keys", "rotate", "--dry-run")
		if r.exitCode != 0 || r.stdout != "dry run: would rewrap 3000 rows from k-old (3000 rows) to the active key k-new; nothing was changed\n" {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", r.exitCode, r.stdout, r.stderr)
		}
	})

	// Kill once a random number of rows is done: at a random point in a
	// batch, or between two.
	killAfter := rand.Int64N(total*2/3) + 1
	cmd := exec.Command(bin, "keys", "rotate", "--batch", strconv.Itoa(batch), "--workers", "1")
	cmd.Env = both
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var done int64
	for done < killAfter {
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM connections WHERE secret_kek_id = 'k-new'`).Scan(&done); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	// A COMMIT sent just before the kill still commits: wait for the
	// killed process's session to end before counting.
	for {
		var open int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL`).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
	}
	counts := rotationtest.Check(t, pool, rotationtest.Keyring(t, oldKey+","+newKey, "k-new"), want)
	killed := err != nil && strings.Contains(err.Error(), "killed")
	t.Logf("SIGKILL after %d rows (%v): %d rewrapped", killAfter, err, counts["k-new"])
	if killed && counts["k-new"]%batch != 0 {
		t.Errorf("after the kill, %d rows are under the new key: not whole batches of %d", counts["k-new"], batch)
	}
	if !killed && counts["k-new"] != total {
		t.Fatalf("the rotation ended with %v before the kill, with %d rows rewrapped", err, counts["k-new"])
	}

	r := runServer(t, bin, both, "keys", "rotate")
	wantOut := "rewrapped " + strconv.FormatInt(total-counts["k-new"], 10) + " rows under the active key k-new in "
	if r.exitCode != 0 || !strings.HasPrefix(r.stdout, wantOut) || !strings.Contains(r.stdout, "every row is under k-new") {
		t.Errorf("second rotation: exit %d\nstdout:\n%s\nstderr:\n%s", r.exitCode, r.stdout, r.stderr)
	}
	if total-counts["k-new"] > 0 && !strings.Contains(r.stderr, " rows/s, about ") {
		t.Errorf("no progress lines on stderr:\n%s", r.stderr)
	}
	rotationtest.Check(t, pool, rotationtest.Keyring(t, newKey, "k-new"), want)

	r = runServer(t, bin, both, "keys", "status")
	if r.exitCode != 0 || !regexp.MustCompile(`(?m)^k-old +0 +yes +retirable`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^k-new +3000 +yes +active`).MatchString(r.stdout) ||
		!strings.Contains(r.stdout, "can be retired (remove from ENCRYPTION_KEYS on every replica): [k-old]") {
		t.Errorf("status after rotation: exit %d\nstdout:\n%s\nstderr:\n%s", r.exitCode, r.stdout, r.stderr)
	}
}

// TestKeysStatusAgreesWithReadiness stores secrets under two keys that a
// running server lacks: /readyz and `keys status` must name the same keys.
func TestKeysStatusAgreesWithReadiness(t *testing.T) {
	t.Parallel()
	live, goneA, goneB := rotationtest.Key("live"), rotationtest.Key("gone-a"), rotationtest.Key("gone-b")
	dbURL, pool, _ := seededDB(t, live, "live", 3)
	env := map[string]string{
		"DATABASE_URL": dbURL, "LISTEN_ADDR": freeAddr(t), "ENCRYPTION_KEYS": live,
		"AUTH_HS256_SECRET": "keys-test-signing-secret-0123456789-abcdef",
	}
	base, stop := startServer(t, env, io.Discard)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	rotationtest.Seed(t, pool, rotationtest.Keyring(t, goneA, "gone-a"), 2)
	rotationtest.Seed(t, pool, rotationtest.Keyring(t, goneB, "gone-b"), 1)

	res, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var ready struct {
		Checks []struct{ Name, Status, Detail string }
	}
	if err := json.NewDecoder(res.Body).Decode(&ready); err != nil {
		t.Fatal(err)
	}
	var keysDetail string
	for _, c := range ready.Checks {
		if c.Name == "encryption_keys" && c.Status == "failing" {
			keysDetail = c.Detail
		}
	}
	if res.StatusCode != http.StatusServiceUnavailable || keysDetail == "" {
		t.Fatalf("/readyz: %d, checks %+v: want 503 with encryption_keys failing", res.StatusCode, ready.Checks)
	}

	var stdout bytes.Buffer
	getenv := func(k string) string { return env[k] }
	statusErr := run(context.Background(), []string{"server", "keys", "status"}, getenv, &stdout, io.Discard)
	if statusErr == nil {
		t.Errorf("keys status succeeded with keys missing:\n%s", stdout.String())
	}
	for _, id := range []string{"live", "gone-a", "gone-b"} {
		inReadyz := strings.Contains(keysDetail, id)
		inStatus := regexp.MustCompile(`(?m)^` + id + ` +\d+ +NO +MISSING`).MatchString(stdout.String())
		inError := statusErr != nil && strings.Contains(statusErr.Error(), id)
		if inReadyz != inStatus || inStatus != inError {
			t.Errorf("key %s: named missing by /readyz %t, by the status table %t, by its error %t",
				id, inReadyz, inStatus, inError)
		}
		if wantMissing := id != "live"; inStatus != wantMissing {
			t.Errorf("key %s: missing %t, want %t", id, inStatus, wantMissing)
		}
	}

	env["ENCRYPTION_KEYS"] = strings.Join([]string{live, goneA, goneB}, ",")
	stdout.Reset()
	if err := run(context.Background(), []string{"server", "keys", "status"}, getenv, &stdout, io.Discard); err != nil {
		t.Errorf("keys status with every key loaded: %v\n%s", err, stdout.String())
	}
}

func TestKeysCommandErrors(t *testing.T) {
	t.Parallel()
	key := rotationtest.Key("k1")
	valid := map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "ENCRYPTION_KEYS": key}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string // in the error
		not  []string // not in the error
	}{
		{"no subcommand", nil, valid, []string{"generate, status or rotate"}, nil},
		{"unknown subcommand", []string{"spin"}, valid, []string{`unknown subcommand "spin"`}, nil},
		{"rotate without configuration names both variables and no AUTH one", []string{"rotate"}, map[string]string{},
			[]string{"DATABASE_URL", "ENCRYPTION_KEYS"}, []string{"AUTH_"}},
		{"status without configuration", []string{"status"}, map[string]string{"ENCRYPTION_KEYS": key},
			[]string{"DATABASE_URL"}, []string{"AUTH_", "ENCRYPTION_KEYS"}},
		{"malformed key is named, not echoed", []string{"rotate"}, map[string]string{"DATABASE_URL": valid["DATABASE_URL"], "ENCRYPTION_KEYS": "k1:c2VjcmV0LW1hdGVyaWFs"},
			[]string{"ENCRYPTION_KEYS", "k1"}, []string{"c2VjcmV0LW1hdGVyaWFs"}},
		{"batch of zero", []string{"rotate", "--batch", "0"}, valid, []string{"--batch 0: want 1 to 10000"}, nil},
		{"batch too large", []string{"rotate", "--batch", "10001"}, valid, []string{"--batch 10001"}, nil},
		{"too many workers", []string{"rotate", "--workers", "9"}, valid, []string{"--workers 9: want 1 to 8"}, nil},
		{"unknown flag", []string{"rotate", "--fast"}, valid, []string{"-fast"}, nil},
		{"extra argument", []string{"status", "now"}, valid, []string{`unexpected argument "now"`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"server", "keys"}, tc.args...)
			err := run(context.Background(), args, func(k string) string { return tc.env[k] }, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("run succeeded")
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			for _, s := range tc.not {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains %q", err, s)
				}
			}
		})
	}

	t.Run("help is not an error", func(t *testing.T) {
		var stdout bytes.Buffer
		for _, args := range [][]string{{"help"}, {"rotate", "-h"}} {
			if err := run(context.Background(), append([]string{"server", "keys"}, args...), os.Getenv, &stdout, io.Discard); err != nil {
				t.Errorf("keys %v: %v", args, err)
			}
		}
		if !strings.Contains(stdout.String(), "docs/key-rotation.md") {
			t.Errorf("keys help:\n%s", stdout.String())
		}
	})
}
