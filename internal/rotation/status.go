package rotation

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"

	"github.com/dynconn/dynconn/internal/crypto"
	"github.com/dynconn/dynconn/internal/store"
)

// Key is one KEK as ReadStatus sees it.
type Key struct {
	// ID is the KEK's id.
	ID string
	// Rows is the number of stored secrets whose data keys it wraps.
	Rows int64
	// Loaded reports whether the keyring holds it.
	Loaded bool
	// Active reports whether it wraps new data keys.
	Active bool
	// Missing reports whether stored secrets need the key and the keyring
	// lacks it (store.MissingKEKs): those secrets cannot be opened, and
	// /readyz fails.
	Missing bool
}

// Retirable reports whether the key can be removed from the keyring: it is
// loaded, not active, and no stored secret needs it.
func (k Key) Retirable() bool { return k.Loaded && !k.Active && k.Rows == 0 }

// Status is the state of the keyring against the stored secrets.
type Status struct {
	// ActiveKEKID is the keyring's active KEK.
	ActiveKEKID string
	// Keys lists every KEK that is loaded or has rows, sorted by id (the ids
	// `server keys generate` makes sort by age).
	Keys []Key
}

// ReadStatus counts the stored secrets under each KEK and compares them
// with keys.
func ReadStatus(ctx context.Context, st *store.Store, keys *crypto.Keyring) (Status, error) {
	counts, err := st.KEKCounts(ctx)
	if err != nil {
		return Status{}, err
	}
	missing, err := st.MissingKEKs(ctx, keys.Has)
	if err != nil {
		return Status{}, err
	}
	ids := maps.Clone(counts)
	for _, id := range keys.IDs() {
		ids[id] += 0
	}
	s := Status{ActiveKEKID: keys.ActiveID()}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		s.Keys = append(s.Keys, Key{ID: id, Rows: counts[id], Loaded: keys.Has(id), Active: id == s.ActiveKEKID,
			Missing: slices.Contains(missing, id)})
	}
	return s, nil
}

// Missing returns the ids of the keys that stored secrets need and the
// keyring lacks. These are the keys the API's /readyz names as not loaded.
func (s Status) Missing() []string {
	var ids []string
	for _, k := range s.Keys {
		if k.Missing {
			ids = append(ids, k.ID)
		}
	}
	return ids
}

// Retirable returns the ids of the keys that can be removed from the keyring.
func (s Status) Retirable() []string {
	var ids []string
	for _, k := range s.Keys {
		if k.Retirable() {
			ids = append(ids, k.ID)
		}
	}
	return ids
}

// OldRows returns the number of stored secrets under other KEKs than the
// active one: what `server keys rotate` would rewrap.
func (s Status) OldRows() int64 {
	var n int64
	for _, k := range s.Keys {
		if !k.Active {
			n += k.Rows
		}
	}
	return n
}

// Write writes s for an operator: a table of keys, then what to do next.
func (s Status) Write(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tROWS\tLOADED\tSTATE")
	for _, k := range s.Keys {
		loaded := "yes"
		if !k.Loaded {
			loaded = "NO"
		}
		var state string
		switch {
		case k.Active:
			state = "active"
		case k.Missing:
			state = "MISSING: add it to " + crypto.EnvKeys
		case k.Retirable():
			state = "retirable: no rows need it"
		default:
			state = "not active: `server keys rotate` moves its rows to the active key"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", k.ID, k.Rows, loaded, state)
	}
	_ = tw.Flush() // w is stdout or a buffer: nothing useful to do about an error
	fmt.Fprintf(w, "\nactive key: %s\n", s.ActiveKEKID)
	if missing := s.Missing(); len(missing) > 0 {
		fmt.Fprintf(w, "missing keys: %v: secrets under them cannot be opened and /readyz fails; add them to %s on every replica\n",
			missing, crypto.EnvKeys)
	}
	if n := s.OldRows(); n > 0 {
		fmt.Fprintf(w, "%s under old keys: run `server keys rotate`\n", rows(n))
	}
	if ids := s.Retirable(); len(ids) > 0 {
		fmt.Fprintf(w, "can be retired (remove from %s on every replica): %v\n", crypto.EnvKeys, ids)
	}
}
