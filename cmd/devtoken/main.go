// Command devtoken prints an HS256 JWT that a dynconn server configured with
// the same AUTH_HS256_SECRET accepts. It is for development and tests only:
// production tokens come from the identity provider behind AUTH_JWKS_URL.
//
//	AUTH_HS256_SECRET=$(cat .dev/hs256) go run ./cmd/devtoken -account acct-dev -sub dev-user
//
// A worker's token, which may also get access tokens for the account's
// connections (POST /connections/{id}/token), grants the scope
// connections:token:
//
//	AUTH_HS256_SECRET=$(cat .dev/hs256) go run ./cmd/devtoken -sub worker -scope connections:token
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dynconn/dynconn/internal/auth"
)

func main() {
	if err := run(os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "devtoken:", err)
		os.Exit(1)
	}
}

// run parses args (args[0] is the program name), reads the secret through
// getenv and writes the token and a newline to stdout.
func run(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("devtoken", flag.ContinueOnError)
	fs.SetOutput(stdout)
	account := fs.String("account", "acct-dev", "account the token acts for (the account_id claim)")
	subject := fs.String("sub", "dev-user", "actor (the sub claim)")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime; negative for an expired token")
	scope := fs.String("scope", "", `scopes to grant, space-separated (the scope claim): "`+auth.ScopeToken+`" for POST /connections/{id}/token`)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: AUTH_HS256_SECRET=... devtoken [-account ID] [-sub ID] [-ttl DURATION] [-scope SCOPES]")
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		args = []string{"devtoken"}
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	secret := getenv("AUTH_HS256_SECRET")
	if secret == "" {
		return errors.New("AUTH_HS256_SECRET is not set (make run keeps one in .dev/hs256)")
	}
	token, err := auth.NewToken([]byte(secret), *account, *subject, *ttl, strings.Fields(*scope)...)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}
