package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"rassylka/app/metrics"
	"rassylka/app/testkit"
)

// The worker's metrics: tasks by type and outcome, sends by outcome,
// served on their own address behind the token.
func TestWorkerMetrics(t *testing.T) {
	reg := metrics.New(nil)
	h := reg.Tasks()(asynq.HandlerFunc(func(_ context.Context, t *asynq.Task) error {
		if string(t.Payload()) == "fail" {
			return errors.New("boom")
		}
		return nil
	}))
	for _, p := range []string{"ok", "ok", "fail"} {
		_ = h.ProcessTask(context.Background(), asynq.NewTask("mailing:batch", []byte(p)))
	}
	sends := reg.Sends()
	sends.Add("success", 5)
	sends.Add("bounce", 1)
	var none *metrics.Sends
	none.Add("success", 1) // a service without metrics counts nothing, and does not fail

	// The address is taken when the worker starts (the worker it replaces
	// is still stopping): it is tried again, with a warning, and served
	// once free.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	logs := &testkit.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { reg.Serve(ctx, addr, "tok", slog.New(slog.NewTextHandler(logs, nil))); close(done) }()
	defer func() {
		cancel()
		<-done
	}()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "metrics server cannot listen"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no warning while the address was taken")
		}
	}
	l.Close()

	get := func(token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		var resp *http.Response
		for i := 0; ; i++ { // the server may still be starting
			resp, err = http.DefaultClient.Do(req)
			if err == nil || i == 250 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d", code)
	}
	if !strings.Contains(logs.String(), "metrics server cannot listen; trying again") {
		t.Errorf("no warning while the address was taken: %s", logs.String())
	}
	if code, _ := get("wrong"); code != http.StatusUnauthorized {
		t.Fatalf("with a wrong token: %d", code)
	}
	code, body := get("tok")
	if code != http.StatusOK {
		t.Fatalf("with the token: %d", code)
	}
	for _, want := range []string{
		`rassylka_tasks_total{outcome="ok",type="mailing:batch"} 2`,
		`rassylka_tasks_total{outcome="error",type="mailing:batch"} 1`,
		`rassylka_task_duration_seconds_count{type="mailing:batch"} 3`,
		`rassylka_sends_total{outcome="success"} 5`,
		`rassylka_sends_total{outcome="bounce"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
