package jobs_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/dynconn/dynconn/internal/jobs"
	"github.com/dynconn/dynconn/internal/logtest"
	"github.com/dynconn/dynconn/internal/store/storetest"
)

type echoArgs struct{ Text string }

func (echoArgs) Kind() string { return "test_echo" }

type echoWorker struct {
	river.WorkerDefaults[echoArgs]
	got chan string
}

func (w *echoWorker) Work(ctx context.Context, job *river.Job[echoArgs]) error {
	w.got <- job.Args.Text
	return nil
}

// TestRiverRunsOnTheTestDatabase: River's schema is in storetest's template,
// so a client starts on a fresh database and works a job.
func TestRiverRunsOnTheTestDatabase(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	w := &echoWorker{got: make(chan string, 1)}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	j, err := jobs.New(pool, slog.New(slog.NewTextHandler(&logtest.Buffer{}, nil)), jobs.Config{PollInterval: 50 * time.Millisecond}, workers)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := j.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := j.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	if _, err := j.Client.Insert(ctx, echoArgs{Text: "hello"}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-w.got:
		if got != "hello" {
			t.Errorf("worked %q", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the job was not worked")
	}
}
