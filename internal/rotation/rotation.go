// Package rotation replaces the key-encryption key (KEK) of stored secrets
// (client secrets and the private keys of certificates) and reports which
// KEKs are in use. It is where the store and crypto meet
// for key management, as package api is for requests: neither of those two
// imports the other.
//
// Rotate re-wraps every data key (DEK) that is not under the keyring's active
// KEK: it unwraps the DEK with the old KEK and wraps it with the active one,
// leaving the secret's ciphertext as it is. It works in batches, each its own
// transaction (store.RewrapBatch), so it can be stopped at any moment — a
// SIGKILL loses at most the open batch — and run again to finish, and it is
// correct while servers create, update and test connections and while another
// Rotate runs.
//
// ReadStatus counts the rows under each KEK and says which KEKs are missing
// from the keyring (store.MissingKEKs, the rule of the API's /readyz) and
// which can be retired.
package rotation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
)

// Batch sizes for Options.BatchSize.
const (
	// DefaultBatchSize keeps each transaction short (a few milliseconds of
	// row locks) while amortising its round trips.
	DefaultBatchSize = 500
	// MaxBatchSize bounds a batch so that it stays well inside the pool's
	// statement timeout.
	MaxBatchSize = 10000

	// DefaultWorkers overlaps one batch's work in this process (reading,
	// unwrapping, wrapping) with another's in the database (index updates,
	// commit).
	DefaultWorkers = 2
	// MaxWorkers keeps a rotation from taking most of the pool's and the
	// database's connections.
	MaxWorkers = 8
)

// Options configure Rotate.
type Options struct {
	// BatchSize is the number of rows per transaction: 0 means
	// DefaultBatchSize; it must not exceed MaxBatchSize.
	BatchSize int
	// Workers is the number of batches in flight at once, each in its own
	// transaction on its own database connection: 0 means DefaultWorkers;
	// it must not exceed MaxWorkers.
	Workers int
	// DryRun counts what Rotate would do and changes nothing.
	DryRun bool
	// Progress receives progress while Rotate runs: a progress bar when it is
	// a terminal, a line every second or so otherwise. Nil means none.
	Progress io.Writer
}

// Result says what Rotate did (or, with DryRun, would do).
type Result struct {
	// ActiveKEKID is the KEK that the data keys were rewrapped with.
	ActiveKEKID string
	// Before is the number of rows under each KEK id when Rotate started.
	Before map[string]int64
	// ToRewrap is the number of rows under other KEKs than the active one
	// when Rotate started.
	ToRewrap int64
	// Rewrapped is the number of rows this run rewrapped. Rows that a
	// concurrent run rewrapped, or whose secret was replaced meanwhile, are
	// not counted.
	Rewrapped int64
	// Failed maps each row that could not be rewrapped, named by its kind
	// and id ("connection 0196…", "webhook 0196…"), to the reason, e.g. a
	// wrapped DEK that does not authenticate. Such rows are left as they are.
	Failed map[string]error
	// After is the number of rows under each KEK id when Rotate ended; nil
	// for a dry run or a run that stopped early.
	After map[string]int64
	// Elapsed is how long the run took.
	Elapsed time.Duration
	// DryRun reports whether this was a dry run.
	DryRun bool
	// Interrupted reports whether ctx ended before the run was finished.
	Interrupted bool
}

// Remaining returns the number of rows under other KEKs than the active one
// when Rotate ended, or -1 if it did not count them.
func (r Result) Remaining() int64 {
	if r.After == nil {
		return -1
	}
	var n int64
	for id, c := range r.After {
		if id != r.ActiveKEKID {
			n += c
		}
	}
	return n
}

// ErrIncomplete means Rotate ended with rows still under other KEKs than
// the active one: it was interrupted, some rows could not be rewrapped, or a
// replica kept writing with an old active key. Result says which.
var ErrIncomplete = errors.New("rotation incomplete")

// Rotate rewraps, under keys' active KEK, the data key of every stored
// secret (of every store.SecretKinds) that is under another KEK. Every KEK that stored rows use must be in
// keys: otherwise it changes nothing and returns an error naming the missing
// ones.
//
// It makes one pass over each table in id order, in batches that skip rows
// others hold locked, then a second pass (only if rows under old KEKs remain)
// whose batches wait for such locks, so that rows being edited during the
// first pass are not missed. When ctx ends it stops between batches; the open
// batch commits first.
//
// A row whose data key cannot be unwrapped (crypto.ErrUnwrap, ErrFormat,
// ErrUnknownKey) is left as it is and reported in Result.Failed; other
// errors, such as a database or KMS failure, stop the run and are returned.
// If rows remain under old KEKs at the end, the error wraps ErrIncomplete.
// Result is filled in as far as the run got, whatever the error.
func Rotate(ctx context.Context, st *store.Store, keys *crypto.Keyring, o Options) (res Result, err error) {
	start := time.Now()
	res = Result{ActiveKEKID: keys.ActiveID(), DryRun: o.DryRun, Failed: map[string]error{}}
	defer func() { res.Elapsed = time.Since(start) }()

	batch, workers := o.BatchSize, o.Workers
	if batch == 0 {
		batch = DefaultBatchSize
	}
	if workers == 0 {
		workers = DefaultWorkers
	}
	if batch < 1 || batch > MaxBatchSize {
		return res, fmt.Errorf("batch size %d: want 1 to %d", batch, MaxBatchSize)
	}
	if workers < 1 || workers > MaxWorkers {
		return res, fmt.Errorf("workers %d: want 1 to %d", workers, MaxWorkers)
	}
	res.Before, err = st.KEKCounts(ctx)
	if err != nil {
		return res, err
	}
	before := res.Before
	for id, n := range before {
		if id != res.ActiveKEKID {
			res.ToRewrap += n
		}
	}
	missing, err := st.MissingKEKs(ctx, keys.Has)
	if err != nil {
		return res, err
	}
	if len(missing) > 0 {
		return res, fmt.Errorf("stored secrets use keys that are not loaded: %s: add them to %s (or %s) beside the active key, then run again",
			describe(missing, before), crypto.EnvKeys, crypto.EnvKeysFile)
	}
	if o.DryRun {
		return res, nil
	}

	r := &rotator{st: st, keys: keys, batch: batch, active: res.ActiveKEKID, res: &res,
		progress: newProgress(o.Progress, res.ToRewrap, start)}
	defer r.progress.finish()

	err = r.passes(ctx, false, workers)
	if err == nil && ctx.Err() == nil {
		// The first pass skipped rows that others held locked; most were
		// rewrapped by another run or got a new secret meanwhile.
		var counts map[string]int64
		if counts, err = st.KEKCounts(ctx); err == nil {
			// Rows that failed may have got a new secret meanwhile: the
			// second pass tells which still fail.
			clear(res.Failed)
			if len(oldKeys(counts, res.ActiveKEKID)) > 0 {
				// One worker: waiting workers would only wait for each other.
				err = r.passes(ctx, true, 1)
			}
		}
	}
	if err != nil {
		return res, err
	}
	if ctx.Err() != nil {
		res.Interrupted = true
		return res, fmt.Errorf("%w: interrupted after rewrapping %d rows: run it again to finish: %w",
			ErrIncomplete, res.Rewrapped, context.Cause(ctx))
	}

	after, err := st.KEKCounts(ctx)
	if err != nil {
		return res, err
	}
	res.After = after
	if n := res.Remaining(); n > 0 {
		return res, incompleteError(res, n)
	}
	// Forget the old keys' ids, so readiness stops checking them and they
	// can be retired.
	if _, err := st.PruneKEKIDs(ctx); err != nil {
		return res, err
	}
	return res, nil
}

// rotator runs the passes of one Rotate call.
type rotator struct {
	st       *store.Store
	keys     *crypto.Keyring
	batch    int
	active   string
	progress progress

	mu  sync.Mutex // guards res and progress, which workers update
	res *Result
}

// passes makes a pass over each kind of secret in turn, until one fails or
// ctx ends.
func (r *rotator) passes(ctx context.Context, wait bool, workers int) error {
	for _, kind := range store.SecretKinds {
		if err := r.pass(ctx, kind, wait, workers); err != nil || ctx.Err() != nil {
			return err
		}
	}
	return nil
}

// pass rewraps batches of kind from the start of its table to its end, in
// workers goroutines, each reading on from its own last row. Batches skip rows that
// others hold locked, unless wait is set, so the workers of a pass (and of
// other Rotate calls) take turns rather than wait for one another. Workers
// stop between batches when ctx ends, which the caller then checks, or when
// one of them fails, whose error pass returns.
func (r *rotator) pass(ctx context.Context, kind store.SecretKind, wait bool, workers int) error {
	rewrap := rewrapper(r.keys, &r.mu, r.res.Failed)
	g, gctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error {
			o := store.RewrapOptions{Kind: kind, ActiveKEKID: r.active, Limit: r.batch, Wait: wait}
			for gctx.Err() == nil {
				// The batch runs to its end even if ctx ends meanwhile: it
				// is short, and a clean commit is better than a rollback.
				b, err := r.st.RewrapBatch(context.WithoutCancel(gctx), o, rewrap)
				if err != nil {
					return err
				}
				if b.Selected == 0 {
					return nil
				}
				o.After = b.LastID
				r.mu.Lock()
				r.res.Rewrapped += int64(b.Rewrapped)
				r.progress.update(r.res.Rewrapped)
				r.mu.Unlock()
			}
			return nil
		})
	}
	return g.Wait()
}

// incompleteError explains why n rows remain under old KEKs.
func incompleteError(res Result, n int64) error {
	if len(res.Failed) == 0 {
		// Rows written after the second pass went by: a replica still has an
		// old key as its active key.
		return fmt.Errorf("%w: %d rows are still under old keys (%s), written while it ran: make sure every replica runs with %s=%s, then run it again",
			ErrIncomplete, n, describe(oldKeys(res.After, res.ActiveKEKID), res.After), crypto.EnvActiveKeyID, res.ActiveKEKID)
	}
	ids := slices.Sorted(maps.Keys(res.Failed))
	const show = 10
	more := ""
	if len(ids) > show {
		more = fmt.Sprintf(" and %d more", len(ids)-show)
		ids = ids[:show]
	}
	return fmt.Errorf("%w: %d rows could not be rewrapped and remain under old keys (%s); %s%s: %w",
		ErrIncomplete, len(res.Failed), describe(oldKeys(res.After, res.ActiveKEKID), res.After),
		strings.Join(ids, ", "), more, res.Failed[ids[0]])
}

// rewrapper returns the store.RewrapFunc that rewraps with keys, recording
// rows that can never be rewrapped in failed (guarded by mu) and skipping them.
func rewrapper(keys *crypto.Keyring, mu *sync.Mutex, failed map[string]error) store.RewrapFunc {
	return func(ctx context.Context, v store.SealedValue) (model.SealedSecret, error) {
		env, err := keys.Rewrap(ctx, crypto.Envelope(v.Sealed), associatedData(v))
		switch {
		case errors.Is(err, crypto.ErrUnwrap), errors.Is(err, crypto.ErrFormat), errors.Is(err, crypto.ErrUnknownKey):
			// Damaged, or under a key this keyring lacks (written after the
			// check at the start): no retry can help, so don't stop the others.
			if v.Slot != "" {
				err = fmt.Errorf("private key of the %s certificate: %w", v.Slot, err)
			}
			mu.Lock()
			failed[v.Kind.Name+" "+v.ID] = err
			mu.Unlock()
			return model.SealedSecret{}, fmt.Errorf("%w: %w", store.ErrSkipRow, err)
		case err != nil:
			return model.SealedSecret{}, err // e.g. a KMS outage: stop, and run again later
		}
		return model.SealedSecret(env), nil
	}
}

// associatedData is what v was sealed with: a webhook secret's, a client
// secret's, or a private key's for its slot.
func associatedData(v store.SealedValue) []byte {
	switch {
	case v.Kind.Name == store.WebhookSecrets.Name:
		return crypto.WebhookAssociatedData(v.Account, v.ID)
	case v.Slot == "":
		return crypto.AssociatedData(v.Account, v.ID)
	default:
		return crypto.CertificateKeyAssociatedData(v.Account, v.ID, string(v.Slot))
	}
}

// oldKeys returns, sorted, the KEK ids other than active that counts has rows under.
func oldKeys(counts map[string]int64, active string) []string {
	var ids []string
	for id, n := range counts {
		if n > 0 && id != active {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// describe lists ids with their row counts: "k1 (12 rows), k2 (1 row)".
func describe(ids []string, counts map[string]int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%s (%s)", id, rows(counts[id]))
	}
	return strings.Join(parts, ", ")
}

// rows returns "1 row" or "n rows".
func rows(n int64) string {
	if n == 1 {
		return "1 row"
	}
	return fmt.Sprintf("%d rows", n)
}

// WriteSummary writes r for an operator: what was (or would be) rewrapped,
// how fast, and what is left.
func (r Result) WriteSummary(w io.Writer) {
	if r.DryRun {
		if r.ToRewrap == 0 {
			fmt.Fprintf(w, "dry run: nothing to do: every row is under the active key %s\n", r.ActiveKEKID)
			return
		}
		fmt.Fprintf(w, "dry run: would rewrap %s from %s to the active key %s; nothing was changed\n",
			rows(r.ToRewrap), describe(oldKeys(r.Before, r.ActiveKEKID), r.Before), r.ActiveKEKID)
		return
	}
	rate := ""
	if s := r.Elapsed.Seconds(); r.Rewrapped > 0 && s > 0 {
		rate = fmt.Sprintf(" (%.0f rows/s)", float64(r.Rewrapped)/s)
	}
	fmt.Fprintf(w, "rewrapped %s under the active key %s in %s%s\n",
		rows(r.Rewrapped), r.ActiveKEKID, r.Elapsed.Round(time.Millisecond), rate)
	if len(r.Failed) > 0 {
		fmt.Fprintf(w, "could not rewrap %s (left as they are):\n", rows(int64(len(r.Failed))))
		for _, id := range slices.Sorted(maps.Keys(r.Failed)) {
			fmt.Fprintf(w, "  %s: %v\n", id, r.Failed[id])
		}
	}
	switch n := r.Remaining(); {
	case r.Interrupted:
		fmt.Fprintln(w, "interrupted: run `server keys rotate` again to finish")
	case n == 0:
		fmt.Fprintf(w, "every row is under %s; old keys can be retired (see `server keys status`)\n", r.ActiveKEKID)
	case n > 0:
		fmt.Fprintf(w, "%s still under old keys: %s\n", rows(n), describe(oldKeys(r.After, r.ActiveKEKID), r.After))
	}
}
