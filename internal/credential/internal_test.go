package credential

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestClearKeyZeroesThePrivateParts(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the backing arrays: clearing must zero them, not just drop them.
	private := []*big.Int{key.D, key.Primes[0], key.Primes[1], key.Precomputed.Dp, key.Precomputed.Dq, key.Precomputed.Qinv}
	words := make([][]big.Word, len(private))
	for i, x := range private {
		words[i] = x.Bits()
		if len(words[i]) == 0 {
			t.Fatalf("private value %d is empty before clearing", i)
		}
	}
	clearKey(key)
	for i, w := range words {
		for _, x := range w {
			if x != 0 {
				t.Fatalf("private value %d still holds a non-zero word", i)
			}
		}
		if private[i].Sign() != 0 {
			t.Errorf("private value %d is %v, want 0", i, private[i])
		}
	}
	if key.N.Sign() == 0 {
		t.Error("the public modulus was cleared too")
	}
}

// The benchmarks measure what a request pays: Generate on creating a
// certificate connection or a next certificate, NewSigner + Assertion on each
// token request, Verify in the simulator.

func BenchmarkGenerateKey(b *testing.B) {
	for _, bits := range []int{2048, 3072} {
		b.Run(fmt.Sprintf("bits=%d", bits), func(b *testing.B) {
			for b.Loop() {
				if _, err := rsa.GenerateKey(rand.Reader, bits); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSelfSign(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, KeyBits)
	if err != nil {
		b.Fatal(err)
	}
	id, now := uuid.New(), time.Now()
	for b.Loop() {
		if _, err := selfSign(key, id, now, DefaultValidity); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	id, now := uuid.New(), time.Now()
	for b.Loop() {
		if _, _, err := Generate(id, now, DefaultValidity); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSigner(b *testing.B) (Certificate, []byte, *Signer) {
	b.Helper()
	cert, pkcs8, err := Generate(uuid.New(), time.Now(), DefaultValidity)
	if err != nil {
		b.Fatal(err)
	}
	s, err := NewSigner(cert.DER, pkcs8)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Destroy)
	return cert, pkcs8, s
}

func BenchmarkNewSigner(b *testing.B) {
	cert, pkcs8, _ := benchSigner(b)
	for b.Loop() {
		s, err := NewSigner(cert.DER, pkcs8)
		if err != nil {
			b.Fatal(err)
		}
		s.Destroy()
	}
}

func BenchmarkAssertion(b *testing.B) {
	_, _, s := benchSigner(b)
	now := time.Now()
	for b.Loop() {
		if _, err := s.Assertion("https://login.microsoftonline.com/t/oauth2/v2.0/token", "client", now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	cert, _, s := benchSigner(b)
	const aud = "https://login.microsoftonline.com/t/oauth2/v2.0/token"
	now := time.Now()
	a, err := s.Assertion(aud, "client", now)
	if err != nil {
		b.Fatal(err)
	}
	uploaded := [][]byte{cert.DER}
	for b.Loop() {
		if _, err := Verify(a, uploaded, aud, "client", now); err != nil {
			b.Fatal(err)
		}
	}
}
