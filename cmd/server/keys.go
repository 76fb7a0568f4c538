package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dynconn/dynconn/internal/crypto"
)

func keysCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("keys: want a subcommand: generate")
	}
	switch args[0] {
	case "generate":
		line, err := crypto.GenerateKey()
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, line)
		return nil
	default:
		return fmt.Errorf("keys: unknown subcommand %q", args[0])
	}
}
