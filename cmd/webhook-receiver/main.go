// Command webhook-receiver is a local webhook endpoint for demos and for
// checking a dynconn setup: it verifies every delivery's signature with the
// Standard Webhooks reference library (as a customer's receiver would) and
// prints the event.
//
// With -subscribe it creates its own endpoint through the API (POST
// /webhooks, with the bearer token in TOKEN), takes the signing secret from
// the answer, and deletes the endpoint again when it stops; dynconn must run
// with WEBHOOK_ALLOW_LOOPBACK=true (make run does). Without it, pass the
// secret of an endpoint you created in WEBHOOK_SECRET.
//
//	TOKEN=... webhook-receiver -subscribe http://localhost:8080
//	WEBHOOK_SECRET=whsec_... webhook-receiver -addr 127.0.0.1:9000
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-receiver:", err)
		os.Exit(1)
	}
}

// maxBody caps what the receiver reads of a delivery.
const maxBody = 1 << 20

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9000", "listen address (port 0: any free port)")
	subscribe := fs.String("subscribe", "", "dynconn's base URL: create an endpoint for this receiver there (bearer token in TOKEN) and delete it on exit")
	events := fs.String("events", "", "with -subscribe, comma-separated event types to receive (default: all)")
	failFirst := fs.Int("fail-first", 0, "answer 503 to the first N attempts of each event, to watch the retries")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	url := "http://" + ln.Addr().String() + "/webhooks"

	secret := getenv("WEBHOOK_SECRET")
	if *subscribe != "" {
		api := &apiClient{base: strings.TrimSuffix(*subscribe, "/"), token: getenv("TOKEN")}
		id, sec, err := api.subscribe(ctx, url, *events)
		if err != nil {
			return err
		}
		secret = sec
		fmt.Fprintf(stdout, "subscribed %s as webhook %s\n", url, id)
		fmt.Fprintf(stdout, "ping it:  curl -sS -X POST %s/webhooks/%s/ping -H \"Authorization: Bearer $TOKEN\"\n", api.base, id)
		defer func() {
			if err := api.unsubscribe(context.WithoutCancel(ctx), id); err != nil {
				fmt.Fprintln(stderr, "webhook-receiver: could not delete the endpoint:", err)
				return
			}
			fmt.Fprintf(stdout, "deleted webhook %s\n", id)
		}()
	}
	if secret == "" {
		return errors.New("set WEBHOOK_SECRET to the endpoint's whsec_… secret, or use -subscribe")
	}
	verifier, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return errors.New("WEBHOOK_SECRET is not a whsec_… secret")
	}
	fmt.Fprintf(stdout, "receiving on %s\n", url)
	srv := &http.Server{Handler: newHandler(verifier, *failFirst, stdout), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

// newHandler verifies and prints deliveries. A delivery whose signature
// does not verify is answered 400, which dynconn retries: a wrong secret
// shows up at once.
func newHandler(verifier *standardwebhooks.Webhook, failFirst int, out io.Writer) http.Handler {
	var mu sync.Mutex
	attempts := map[string]int{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		id := r.Header.Get(standardwebhooks.HeaderWebhookID)
		mu.Lock()
		defer mu.Unlock()
		if err := verifier.Verify(body, r.Header); err != nil {
			fmt.Fprintf(out, "REJECTED %s: %v\n", id, err)
			http.Error(w, "signature does not verify", http.StatusBadRequest)
			return
		}
		attempts[id]++
		n := attempts[id]
		if n <= failFirst {
			fmt.Fprintf(out, "%s attempt %d: answering 503 (-fail-first %d)\n", id, n, failFirst)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var ev struct {
			Type      string          `json:"type"`
			Timestamp string          `json:"timestamp"`
			Data      json.RawMessage `json:"data"`
		}
		_ = json.Unmarshal(body, &ev)
		again := ""
		if n > failFirst+1 {
			again = " (again: a retry of a delivery already received)"
		}
		fmt.Fprintf(out, "%s %s %s verified, attempt %d%s\n  %s\n", ev.Timestamp, ev.Type, id, n, again, ev.Data)
		w.WriteHeader(http.StatusNoContent)
	})
}

// apiClient creates and deletes this receiver's endpoint.
type apiClient struct {
	base, token string
}

func (c *apiClient) subscribe(ctx context.Context, url, events string) (id, secret string, err error) {
	if c.token == "" {
		return "", "", errors.New("-subscribe needs a bearer token in TOKEN (make run prints one)")
	}
	req := map[string]any{"url": url, "description": "webhook-receiver"}
	if events != "" {
		req["event_types"] = strings.Split(events, ",")
	}
	var created struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := c.do(ctx, http.MethodPost, "/webhooks", req, http.StatusCreated, &created); err != nil {
		if strings.Contains(err.Error(), "not_public") {
			err = fmt.Errorf("%w\n(start dynconn with WEBHOOK_ALLOW_LOOPBACK=true to let it send to %s)", err, url)
		}
		return "", "", err
	}
	return created.ID, created.Secret, nil
}

func (c *apiClient) unsubscribe(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/webhooks/"+id, nil, http.StatusNoContent, nil)
}

func (c *apiClient) do(ctx context.Context, method, path string, body any, want int, out any) error {
	var rdr io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rdr = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rdr)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, res.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
