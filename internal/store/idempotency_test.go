package store_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/dynconn/dynconn/internal/model"
	"github.com/dynconn/dynconn/internal/store"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

// TestCreateConnectionOnce: the first call creates and keeps the body that
// render makes; a second call with the same key and body returns that body
// as it was and creates nothing; another body under the key is refused.
func TestCreateConnectionOnce(t *testing.T) {
	t.Parallel()
	s := storetest.New(t)
	ctx := context.Background()
	key := store.IdempotencyKey{Key: "key-1", RequestHash: []byte("hash-1")}
	c := newConnection(account)
	var rendered []model.Connection
	render := func(c model.Connection) ([]byte, error) {
		rendered = append(rendered, c)
		return []byte(`{"id":"` + c.ID + `"}` + "\n"), nil
	}

	body, replayed, err := s.CreateConnectionOnce(ctx, c, testAudit, key, render)
	if err != nil || replayed || string(body) != `{"id":"`+c.ID+`"}`+"\n" {
		t.Fatalf("first call: %q, replayed %v, %v", body, replayed, err)
	}
	if len(rendered) != 1 || rendered[0].Version != store.InitialVersion || rendered[0].ID != c.ID {
		t.Fatalf("render got %+v, want the created connection at version %d", rendered, store.InitialVersion)
	}

	again := newConnection(account) // a retry seals again, under a new id
	body2, replayed, err := s.CreateConnectionOnce(ctx, again, testAudit, key, render)
	if err != nil || !replayed || string(body2) != string(body) || len(rendered) != 1 {
		t.Fatalf("replay: %q, replayed %v, %v, %d renders; want the first body", body2, replayed, err, len(rendered))
	}
	if items, _, err := s.Connections(ctx, account, store.Page{}, store.Filter{}); err != nil || len(items) != 1 {
		t.Errorf("%d connections (err %v), want 1", len(items), err)
	}

	other := store.IdempotencyKey{Key: "key-1", RequestHash: []byte("hash-2")}
	if _, _, err := s.CreateConnectionOnce(ctx, newConnection(account), testAudit, other, render); !errors.Is(err, store.ErrIdempotencyMismatch) {
		t.Errorf("key with another body: err = %v, want ErrIdempotencyMismatch", err)
	}

	// Servers from before the API derived status and Location replay from
	// these columns: they must still read a 201 and the connection's path.
	var status int
	var location string
	if err := s.Pool().QueryRow(ctx, `SELECT status, location FROM idempotency_keys WHERE account = $1 AND key = $2`,
		account, key.Key).Scan(&status, &location); err != nil {
		t.Fatal(err)
	}
	if status != 201 || location != "/connections/"+c.ID {
		t.Errorf("legacy columns: status %d, location %q; want 201, /connections/%s", status, location, c.ID)
	}
}

func TestServiceKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := storetest.New(t)
	first := model.SealedSecret{Ciphertext: []byte("first"), WrappedDEK: []byte("dek-1"), KEKID: "k1"}
	second := model.SealedSecret{Ciphertext: []byte("second"), WrappedDEK: []byte("dek-2"), KEKID: "k1"}
	got, err := s.ServiceKey(ctx, "test", first)
	if err != nil || !reflect.DeepEqual(got, first) {
		t.Fatalf("first ServiceKey = %+v, %v; want what it stored", got, err)
	}
	// A second server offering its own key gets the first one.
	if got, err = s.ServiceKey(ctx, "test", second); err != nil || !reflect.DeepEqual(got, first) {
		t.Fatalf("second ServiceKey = %+v, %v; want the first key", got, err)
	}
	resealed := model.SealedSecret{Ciphertext: []byte("first"), WrappedDEK: []byte("dek-k2"), KEKID: "k2"}
	if err := s.ReplaceServiceKey(ctx, "test", first, resealed); err != nil {
		t.Fatal(err)
	}
	// Another server that read the old sealing too does not undo it.
	if err := s.ReplaceServiceKey(ctx, "test", first, second); !errors.Is(err, store.ErrServiceKeyChanged) {
		t.Errorf("replace of a stale sealing: %v, want ErrServiceKeyChanged", err)
	}
	if got, err = s.ServiceKey(ctx, "test", second); err != nil || !reflect.DeepEqual(got, resealed) {
		t.Errorf("after the replace: %+v, %v; want %+v", got, err, resealed)
	}
}
