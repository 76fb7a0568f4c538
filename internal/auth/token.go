package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// NewToken returns an HS256 JWT for development and tests: sub is subject,
// the DefaultAccountClaim claim is account, iat is now and exp is now+ttl (a
// negative ttl gives a token that has already expired, for tests), and the
// scope claim lists scopes, if any (such as ScopeToken). The secret must be
// at least MinHS256SecretLen bytes, as NewVerifier requires.
func NewToken(secret []byte, account, subject string, ttl time.Duration, scopes ...string) (string, error) {
	if len(secret) < MinHS256SecretLen {
		return "", fmt.Errorf("new token: secret must be at least %d bytes", MinHS256SecretLen)
	}
	if account == "" || subject == "" {
		return "", errors.New("new token: account and subject must not be empty")
	}
	if ttl == 0 {
		return "", errors.New("new token: ttl must not be zero")
	}
	now := time.Now()
	claims := jwt.MapClaims{
		DefaultAccountClaim: account,
		"sub":               subject,
		"iat":               now.Unix(),
		"exp":               now.Add(ttl).Unix(),
	}
	if len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	return signed, nil
}
