package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/rotation"
	"github.com/dynconn/dynconn/internal/store"
)

const keysUsage = `usage: server keys generate|status|rotate

  generate   print a fresh key line (id:base64) to add to ENCRYPTION_KEYS
  status     rows under each key, which key is active, which keys are
             missing (exit status 1) and which can be retired
  rotate [--dry-run] [--batch N] [--workers N]
             rewrap every data key that is not under ENCRYPTION_ACTIVE_KEY_ID;
             safe to stop (Ctrl-C, or even kill -9) and run again

status and rotate read DATABASE_URL and ENCRYPTION_KEYS (or ENCRYPTION_KEYS_FILE)
and ENCRYPTION_ACTIVE_KEY_ID, like serve; they need no AUTH_* variables.
See docs/key-rotation.md for the whole procedure.
`

func keysCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return errors.New("keys: want a subcommand: generate, status or rotate")
	}
	switch args[0] {
	case "generate":
		line, err := crypto.GenerateKey()
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, line)
		return nil
	case "status":
		return keysStatus(ctx, args[1:], getenv, stdout, stderr)
	case "rotate":
		return keysRotate(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, keysUsage)
		return nil
	default:
		fmt.Fprint(stderr, keysUsage)
		return fmt.Errorf("keys: unknown subcommand %q", args[0])
	}
}

// keysStatus prints the rows under each KEK and fails if a KEK that rows
// use is not loaded, so a deployment script can check the keyring before it
// rolls out (the same rule as /readyz).
func keysStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newKeysFlagSet("status", stderr)
	if err := parseKeysFlags(fs, args); err != nil {
		return helpIsNotAnError(err)
	}
	st, keys, err := openForKeys(ctx, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	status, err := rotation.ReadStatus(ctx, st, keys)
	if err != nil {
		return fmt.Errorf("keys status: %w", err)
	}
	status.Write(stdout)
	if missing := status.Missing(); len(missing) > 0 {
		return fmt.Errorf("keys status: stored secrets use keys that are not loaded: %s", strings.Join(missing, ", "))
	}
	return nil
}

// keysRotate rewraps the data keys under old KEKs with the active one:
// progress on stderr, the summary on stdout.
func keysRotate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newKeysFlagSet("rotate", stderr)
	var o rotation.Options
	fs.BoolVar(&o.DryRun, "dry-run", false, "count what would be rewrapped; change nothing")
	fs.IntVar(&o.BatchSize, "batch", rotation.DefaultBatchSize,
		fmt.Sprintf("rows per transaction (1 to %d)", rotation.MaxBatchSize))
	fs.IntVar(&o.Workers, "workers", rotation.DefaultWorkers,
		fmt.Sprintf("batches in flight at once, each on its own database connection (1 to %d)", rotation.MaxWorkers))
	if err := parseKeysFlags(fs, args); err != nil {
		return helpIsNotAnError(err)
	}
	// 0 would mean the default to package rotation; on the command line it
	// is a mistake.
	if o.BatchSize < 1 || o.BatchSize > rotation.MaxBatchSize {
		return fmt.Errorf("keys rotate: --batch %d: want 1 to %d", o.BatchSize, rotation.MaxBatchSize)
	}
	if o.Workers < 1 || o.Workers > rotation.MaxWorkers {
		return fmt.Errorf("keys rotate: --workers %d: want 1 to %d", o.Workers, rotation.MaxWorkers)
	}
	st, keys, err := openForKeys(ctx, getenv)
	if err != nil {
		return err
	}
	defer st.Close()
	o.Progress = stderr
	res, err := rotation.Rotate(ctx, st, keys, o)
	// No summary when it stopped before it began (a missing key, say): the
	// error says it all.
	if err == nil || errors.Is(err, rotation.ErrIncomplete) || res.Rewrapped > 0 {
		res.WriteSummary(stdout)
	}
	if err != nil {
		return fmt.Errorf("keys rotate: %w", err)
	}
	return nil
}

func newKeysFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("server keys "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseKeysFlags parses args and refuses arguments after the flags.
func parseKeysFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("keys %s: %w", strings.TrimPrefix(fs.Name(), "server keys "), err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// helpIsNotAnError returns nil for -h, whose usage the flag set has printed.
func helpIsNotAnError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// openForKeys reads what the keys subcommands need from the environment —
// DATABASE_URL and the keyring, not the AUTH_* variables — reporting every
// problem at once, and connects to the database. It does not migrate: the
// servers do that, and a rotation should not change the schema under them.
func openForKeys(ctx context.Context, getenv func(string) string) (*store.Store, *crypto.Keyring, error) {
	dbURL := strings.TrimSpace(getenv("DATABASE_URL"))
	keys, kerr := crypto.LoadKeyring(getenv)
	if err := errors.Join(checkDatabaseURL(dbURL), kerr); err != nil {
		return nil, nil, fmt.Errorf("configuration:\n%w", err)
	}
	st, err := store.Open(ctx, dbURL, nil)
	if err != nil {
		return nil, nil, err
	}
	return st, keys, nil
}
