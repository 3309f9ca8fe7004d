package mail_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	rmail "rassylka/app/mail"
	"rassylka/app/testkit"
)

// A pool that cannot reach the server tells so through Redis, where the
// web process reads it, and its next delivered message ends it. The
// worker's log says when the outage began and when it ended, once each.
func TestPoolReportsTheServerUnreachable(t *testing.T) {
	ctx := context.Background()
	sink := testkit.SMTP(t)
	sender, err := rmail.NewSender(sink.URL(), "Shop <news@shop.example>", "mail.example.test")
	if err != nil {
		t.Fatal(err)
	}
	rdb := testkit.Redis(t)
	var logged bytes.Buffer
	health := rmail.NewHealth(rdb).LogTo(slog.New(slog.NewTextHandler(&logged, nil)))
	pool := rmail.NewPool(sender.WithTimeout(time.Second), 2, nil).ReportTo(health)
	t.Cleanup(pool.Close)
	msg := rmail.Message{Subject: "Hi", Text: "Hello"}
	msg.To.Address = "ann@example.com"

	if _, ok, err := health.Trouble(ctx); ok || err != nil {
		t.Fatalf("trouble before any send: %v %v", ok, err)
	}
	if err := sink.Down(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if r := pool.Send(ctx, msg); r.Class != rmail.Unreachable || !r.NoServer {
		t.Fatalf("send to a server down: %+v; want it unreachable, with no connection opened", r)
	}
	first, ok, err := health.Trouble(ctx)
	if !ok || err != nil || !strings.Contains(first.Reason, "refused") || first.Since.Before(began.Add(-time.Second)) {
		t.Fatalf("trouble told: %+v %v %v", first, ok, err)
	}
	// Another failure keeps the time it began.
	pool.Send(ctx, msg)
	if again, _, _ := health.Trouble(ctx); !again.Since.Equal(first.Since) {
		t.Errorf("the trouble began at %v, then at %v", first.Since, again.Since)
	}
	if ttl := rdb.TTL(ctx, "mail:trouble").Val(); ttl <= 0 || ttl > 5*time.Minute {
		t.Errorf("the trouble is kept %v: it must expire if no worker is left to end it", ttl)
	}

	if err := sink.Up(); err != nil {
		t.Fatal(err)
	}
	if r := pool.Send(ctx, msg); r.Class != rmail.Delivered {
		t.Fatalf("send once the server is back: %+v", r)
	}
	if _, ok, err := health.Trouble(ctx); ok || err != nil {
		t.Fatalf("trouble after a delivery: %v %v", ok, err)
	}
	pool.Send(ctx, msg)
	lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `level=WARN msg="mail server takes no mail" reason=`) || !strings.Contains(lines[0], "refused") ||
		!strings.Contains(lines[1], `level=INFO msg="mail server reachable again" unreachable_for=`) {
		t.Errorf("log:\n%s\nwant a warning when the server became unreachable and a line when it was reached again", logged.String())
	}
}

// A trouble one worker reported is ended by a message another one
// delivers: the notice does not outlive the outage by minutes.
func TestAnotherWorkersDeliveryEndsTheTrouble(t *testing.T) {
	ctx := context.Background()
	sink := testkit.SMTP(t)
	sender, err := rmail.NewSender(sink.URL(), "Shop <news@shop.example>", "mail.example.test")
	if err != nil {
		t.Fatal(err)
	}
	rdb := testkit.Redis(t)
	health := rmail.NewHealth(rdb)
	broken, err := rmail.NewSender("smtp://127.0.0.1:1", "Shop <news@shop.example>", "mail.example.test")
	if err != nil {
		t.Fatal(err)
	}
	a := rmail.NewPool(broken.WithTimeout(time.Second), 1, nil).ReportTo(rmail.NewHealth(rdb))
	b := rmail.NewPool(sender, 1, nil).ReportTo(rmail.NewHealth(rdb))
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	msg := rmail.Message{Subject: "Hi", Text: "Hello"}
	msg.To.Address = "ann@example.com"
	a.Send(ctx, msg)
	if _, ok, _ := health.Trouble(ctx); !ok {
		t.Fatal("no trouble told by the worker that cannot connect")
	}
	if r := b.Send(ctx, msg); r.Class != rmail.Delivered {
		t.Fatalf("send: %+v", r)
	}
	if tr, ok, _ := health.Trouble(ctx); ok {
		t.Fatalf("trouble still told after another worker delivered: %+v", tr)
	}
}
