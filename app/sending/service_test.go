package sending_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"golang.org/x/time/rate"
	"log/slog"
	"mime"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/hibiken/asynq"
	"github.com/uptrace/bun/dialect/pgdialect"

	"rassylka/app/mail"
	"rassylka/app/metrics"
	"rassylka/app/model"
	"rassylka/app/sending"
	"rassylka/app/stats"
	"rassylka/app/store"
	"rassylka/app/task"
	"rassylka/app/testkit"
)

func TestManualRunSendsOncePerRecipient(t *testing.T) {
	w := newWorld(t, 7)
	ctx := context.Background()
	if err := w.st.Unsubscribe(ctx, w.owner.ID, w.clients[5].Email); err != nil {
		t.Fatal(err)
	}
	if err := w.st.MarkBounced(ctx, []int64{w.clients[6].ID}); err != nil {
		t.Fatal(err)
	}
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if run.Total != 7 || run.Trigger != model.TriggerManual {
		t.Fatalf("run %+v", run)
	}
	// A second "Send now" while it sends is refused.
	if _, err := w.svc.StartManual(ctx, w.mailing.ID, nil); !errors.Is(err, sending.ErrRunActive) {
		t.Fatalf("second manual run: %v", err)
	}
	// Every batch twice: the second time sends nothing.
	r := w.drain(t, run.ID)
	open, _ := w.st.OpenBatches(ctx)
	if len(open) != 0 {
		t.Fatalf("open batches left: %v", open)
	}
	for seq := 0; seq < 3; seq++ {
		if err := w.svc.ProcessBatch(ctx, run.ID, seq); err != nil {
			t.Fatal(err)
		}
	}
	got := received(w.sink)
	if len(got) != 5 {
		t.Fatalf("received for %d addresses, want 5: %v", len(got), got)
	}
	for addr, n := range got {
		if n != 1 {
			t.Errorf("%s got %d messages", addr, n)
		}
	}
	if got["r05@example.com"]+got["r06@example.com"] != 0 {
		t.Error("an unsubscribed or bounced client was mailed")
	}
	if r.FinishedAt == nil || r.Succeeded != 5 || r.Failed != 0 || r.Skipped != 2 || r.Total != 7 {
		t.Fatalf("run after sending: %+v", r)
	}
	as := w.attempts(t, run.ID)
	if len(as) != 5 {
		t.Fatalf("%d attempts", len(as))
	}
	for _, a := range as {
		if a.Status != model.AttemptSuccess || !strings.HasPrefix(a.Response, "2") || a.Tries != 1 {
			t.Errorf("attempt %+v", a)
		}
	}
	// The connections were pooled: at most the pool's size of SMTP sessions
	// for all the messages.
	if n := w.sink.Sessions(); n > w.pool.Size() {
		t.Errorf("%d SMTP sessions for %d messages, want at most %d (reused connections)", n, len(got), w.pool.Size())
	}
	m, _ := w.st.MailingByID(ctx, store.Everyone(0), w.mailing.ID)
	if m.Status != model.StatusRunning {
		t.Errorf("mailing status %s after its first run, want running", m.Status)
	}
}

func TestDeliveredMessageHeaders(t *testing.T) {
	w := newWorld(t, 1)
	run, err := w.svc.StartManual(context.Background(), w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.drain(t, run.ID)
	msgs := w.sink.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	h := msgs[0].Header()
	subject, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	to, _ := h.AddressList("To")
	from, _ := h.AddressList("From")
	if subject != "News for Reader 0" || len(to) != 1 || to[0].Name != "Reader 0" || to[0].Address != "r00@example.com" ||
		len(from) != 1 || from[0].Address != "news@shop.example" {
		t.Fatalf("subject %q to %v from %v", subject, to, from)
	}
	if id := h.Get("Message-ID"); !strings.HasSuffix(id, "@mail.example.test>") {
		t.Errorf("Message-ID %q not on the BASE_URL host", id)
	}
	if _, err := h.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	lu := h.Get("List-Unsubscribe")
	if !bytes.Contains(msgs[0].Data, []byte("\r\nList-Unsubscribe: <"+baseURL+"/u/")) {
		t.Errorf("List-Unsubscribe is not on its header's line:\n%s", msgs[0].Data)
	}
	if !strings.HasPrefix(lu, "<"+baseURL+"/u/") || h.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
		t.Fatalf("List-Unsubscribe %q, -Post %q", lu, h.Get("List-Unsubscribe-Post"))
	}
	token := strings.TrimSuffix(strings.TrimPrefix(lu, "<"+baseURL+"/u/"), ">")
	link, err := mail.ReadUnsubscribeToken(w.svc.Secret, token)
	if err != nil || link != (mail.UnsubscribeLink{ClientID: w.clients[0].ID, OwnerID: w.owner.ID, Email: "r00@example.com"}) {
		t.Fatalf("unsubscribe token -> %+v %v", link, err)
	}
	body := msgs[0].Body()
	if !strings.Contains(body, "Dear Reader 0 <r00@example.com>, hello.") || !strings.Contains(body, baseURL+"/u/"+token) {
		t.Fatalf("body:\n%s", body)
	}
	if ct := h.Get("Content-Type"); !strings.Contains(strings.ToLower(ct), "charset=utf-8") {
		t.Errorf("Content-Type %q", ct)
	}
}

// A run's mail goes from its owner's sender name and carries their reply
// address as Reply-To, as set when its batch starts; MAIL_FROM's name and
// no Reply-To while they have none.
func TestMailCarriesTheOwnersSenderNameAndReplyAddress(t *testing.T) {
	w := newWorld(t, 2)
	ctx := context.Background()
	send := func() []string {
		t.Helper()
		w.sink.Reset()
		run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.drain(t, run.ID)
		var got []string
		for _, m := range w.sink.Messages() {
			from, err := m.Header().AddressList("From")
			if err != nil || len(from) != 1 || from[0].Address != "news@shop.example" {
				t.Fatalf("From %q: %v", m.Header().Get("From"), err)
			}
			got = append(got, from[0].Name+" | "+m.Header().Get("Reply-To"))
		}
		return got
	}
	if got := send(); len(got) != 2 || got[0] != "Shop | " || got[1] != got[0] {
		t.Fatalf("without a sender name or reply address: %q", got)
	}
	if err := w.st.UpdateProfile(ctx, w.owner.ID, store.Profile{FullName: w.owner.FullName, TimeZone: w.owner.TimeZone, SenderName: "Лавка Анны"}); err != nil {
		t.Fatal(err)
	}
	if err := w.st.SetReplyTo(ctx, w.owner.ID, "desk@shop.example", ""); err != nil {
		t.Fatal(err)
	}
	if got := send(); len(got) != 2 || got[0] != "Лавка Анны | <desk@shop.example>" || got[1] != got[0] {
		t.Fatalf("with them: %q", got)
	}
}

func TestReplyClasses(t *testing.T) {
	w := newWorld(t, 0)
	ctx := context.Background()
	addrs := []string{"ok@example.com", "later@example.com", "flaky@example.com", "nouser@example.com", "rejected@example.com"}
	var ids []int64
	for _, a := range addrs {
		c := &model.Client{OwnerID: w.owner.ID, Email: a}
		if err := w.st.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	if err := w.st.UpdateMailing(ctx, w.owner.ID, w.mailing, ids); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	flaky := 0
	w.sink.RejectRcpt(func(to string) *smtp.SMTPError {
		switch to {
		case "later@example.com":
			return busy
		case "flaky@example.com":
			mu.Lock()
			defer mu.Unlock()
			if flaky++; flaky == 1 {
				return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "try again later"}
			}
		case "nouser@example.com":
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		case "rejected@example.com":
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "policy rejection"}
		}
		return nil
	})
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := w.drain(t, run.ID)
	byAddr := map[string]model.Attempt{}
	for _, a := range w.attempts(t, run.ID) {
		byAddr[a.Email] = a
	}
	check := func(addr string, status model.AttemptStatus, code int, tries int, text string) {
		t.Helper()
		a := byAddr[addr]
		if a.Status != status || (a.Code == nil && code != 0) || (a.Code != nil && *a.Code != code) || a.Tries != tries || !strings.Contains(a.Response, text) {
			c := 0
			if a.Code != nil {
				c = *a.Code
			}
			t.Errorf("%s: %s code %d tries %d %q; want %s %d %d containing %q", addr, a.Status, c, a.Tries, a.Response, status, code, tries, text)
		}
	}
	check("ok@example.com", model.AttemptSuccess, 250, 1, "250")
	check("later@example.com", model.AttemptFailure, 450, 3, "mailbox busy")
	check("flaky@example.com", model.AttemptSuccess, 250, 2, "250")
	check("nouser@example.com", model.AttemptFailure, 550, 1, "no such user")
	check("rejected@example.com", model.AttemptFailure, 554, 1, "policy rejection")
	if len(byAddr) != 5 || r.Succeeded != 2 || r.Failed != 3 {
		t.Fatalf("run %+v, %d attempts", r, len(byAddr))
	}
	bounced, _ := w.st.ClientByID(ctx, store.Own(w.owner.ID), ids[3])
	rejected, _ := w.st.ClientByID(ctx, store.Own(w.owner.ID), ids[4])
	if bounced.BouncedAt == nil || rejected.BouncedAt != nil {
		t.Fatalf("5.1.1 must mark a hard bounce (got %v), 5.7.1 must not (got %v)", bounced.BouncedAt, rejected.BouncedAt)
	}

	// Retry failed: only the temporary failure goes again.
	w.sink.RejectRcpt(nil)
	retry, err := w.svc.StartManual(ctx, w.mailing.ID, &run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if retry.Total != 1 {
		t.Fatalf("retry run total %d, want 1", retry.Total)
	}
	r2 := w.drain(t, retry.ID)
	as := w.attempts(t, retry.ID)
	if len(as) != 1 || as[0].Email != "later@example.com" || as[0].Status != model.AttemptSuccess || r2.Succeeded != 1 {
		t.Fatalf("retry attempts %+v", as)
	}
	if _, err := w.svc.StartManual(ctx, w.mailing.ID, &retry.ID); !errors.Is(err, sending.ErrNoFailures) {
		t.Fatalf("retry of a run without failures: %v", err)
	}
}

// A server that cannot be reached costs the run time, not recipients:
// past their tries, the recipients being sent wait for it, and no one new
// is claimed, until it answers again or the window closes.
func TestServerDownIsWaitedFor(t *testing.T) {
	w := newWorld(t, 6)
	w.svc.BatchSize = 10 // one batch, chunks of 2
	ctx := context.Background()
	var later atomic.Int64 // how far the service's clock is ahead
	w.svc.Now = func() time.Time { return time.Now().Add(time.Duration(later.Load())) }
	down := func() {
		if err := w.sink.Down(); err != nil {
			t.Fatal(err)
		}
	}
	// tried waits until the run's attempts say that many tries at least,
	// and returns them.
	tried := func(runID int64, tries int) []model.Attempt {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; {
			as := w.attempts(t, runID)
			if len(as) > 0 && slices.IndexFunc(as, func(a model.Attempt) bool { return a.Tries < tries }) < 0 {
				return as
			}
			if time.Now().After(deadline) {
				t.Fatalf("attempts never reached %d tries: %+v", tries, as)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	drained := func(runID int64) <-chan *model.Run {
		out := make(chan *model.Run, 1)
		go func() { out <- w.drain(t, runID) }()
		return out
	}

	// The server comes back: everyone is mailed once, the first chunk
	// after many more tries than the retry delays allow a recipient's
	// own trouble.
	down()
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	end := drained(run.ID)
	as := tried(run.ID, 6)
	if len(as) != 2 {
		t.Fatalf("attempts while the server is down: %+v; want the first chunk's only", as)
	}
	for _, a := range as {
		if a.Status == model.AttemptSuccess || !strings.Contains(a.Response, "refused") {
			t.Errorf("waiting for the server: %+v", a)
		}
	}
	if err := w.sink.Up(); err != nil {
		t.Fatal(err)
	}
	r := <-end
	if r.Succeeded != 6 || r.Failed != 0 || r.FinishedAt == nil {
		t.Fatalf("run once the server is back %+v", r)
	}
	for addr, n := range received(w.sink) {
		if n != 1 {
			t.Errorf("%s received %d", addr, n)
		}
	}
	for _, a := range w.attempts(t, run.ID) {
		if a.Status != model.AttemptSuccess || (a.Tries > 1) != (a.Email == w.clients[0].Email || a.Email == w.clients[1].Email) {
			t.Errorf("once the server is back: %+v", a)
		}
	}

	// The window closes first: those waiting keep their failure, the
	// others are skipped.
	down()
	run, err = w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	end = drained(run.ID)
	tried(run.ID, 4)
	later.Store(int64(2 * time.Hour))
	select {
	case r = <-end:
	case <-time.After(10 * time.Second):
		t.Fatal("the run did not stop when its window closed")
	}
	as = w.attempts(t, run.ID)
	for _, a := range as {
		if a.Status != model.AttemptFailure || a.Tries < 4 || !strings.Contains(a.Response, "refused") || a.Code != nil {
			t.Errorf("server down until the window closed: %+v", a)
		}
	}
	if len(as) != 2 || r.Failed != 2 || r.Skipped != 4 || r.FinishedAt == nil {
		t.Fatalf("run %+v, attempts %+v", r, as)
	}
}

// A server that refuses the sender (here: it wants a sign-in the
// settings lack) refuses every recipient alike: like a server that cannot
// be reached, it costs the run time, not recipients, who wait for it
// with no failure for good and no bounce, and are mailed once it takes
// mail again.
func TestServerRefusingUsIsWaitedFor(t *testing.T) {
	w := newWorld(t, 6)
	w.svc.BatchSize = 10 // one batch, chunks of 2
	ctx := context.Background()
	w.sink.RejectMail(&smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"})
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	end := make(chan *model.Run, 1)
	go func() { end <- w.drain(t, run.ID) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		as := w.attempts(t, run.ID)
		if len(as) > 0 && slices.IndexFunc(as, func(a model.Attempt) bool { return a.Tries < 5 }) < 0 {
			if len(as) != 2 {
				t.Fatalf("attempts while the server refuses us: %+v; want the first chunk's only", as)
			}
			for _, a := range as {
				if a.Status == model.AttemptSuccess || a.Code != nil || !strings.Contains(a.Response, "refuses mail from us: 530 5.7.0 Authentication required") {
					t.Errorf("waiting for the server to take our mail: %+v", a)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("attempts never reached 5 tries: %+v", as)
		}
	}
	w.sink.RejectMail(nil)
	r := <-end
	if r.Succeeded != 6 || r.Failed != 0 || r.FinishedAt == nil {
		t.Fatalf("run once the server takes our mail %+v", r)
	}
	for addr, n := range received(w.sink) {
		if n != 1 {
			t.Errorf("%s received %d", addr, n)
		}
	}
	for _, cl := range w.clients {
		if got, _ := w.st.ClientByID(ctx, store.Everyone(0), cl.ID); got.BouncedAt != nil {
			t.Errorf("%s marked bounced", cl.Email)
		}
	}
}

func TestServerStalled(t *testing.T) {
	w := newWorld(t, 2)
	ctx := context.Background()

	// A server that stalls past the timeout: the outcome is unknown, so it
	// is not tried again.
	sender, _ := mail.NewSender(w.sink.URL(), "Shop <news@shop.example>", "mail.example.test")
	w.svc.Sender = mail.NewPool(sender.WithTimeout(300*time.Millisecond), 2, nil)
	w.sink.Stall(2 * time.Second)
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.drain(t, run.ID)
	for _, a := range w.attempts(t, run.ID) {
		if a.Status != model.AttemptFailure || a.Tries != 1 || !strings.Contains(strings.ToLower(a.Response), "timeout") {
			t.Errorf("stalled server: %+v", a)
		}
	}
}

// A send whose outcome a dead worker took with it is recorded as a failure
// with unknown outcome, dated when it was sent (the claim's time, or the
// pending try's), not when a worker finds it, and is said in the log.
func TestInterruptedSendIsNotRepeated(t *testing.T) {
	w := newWorld(t, 4)
	w.svc.BatchSize = 10 // one batch
	ctx := context.Background()
	// A worker claimed the first two recipients, and was trying the
	// second again after a deferral, when it died.
	claimedFrom := time.Now()
	run, _, c := w.claimFirst(t, 2)
	claimedTo := time.Now()
	if c[0].ClientID != w.clients[0].ID {
		t.Fatalf("claim %+v", c)
	}
	deferred := store.AttemptResult{ClientID: c[1].ClientID, Email: c[1].Email, Status: model.AttemptFailure, Code: 450, Response: "450 busy", Tries: 1, At: time.Now()}
	id, ok, err := w.st.WriteAttempt(ctx, run.ID, w.mailing.ID, deferred, store.AttemptResult{})
	if err != nil || !ok {
		t.Fatalf("write attempt: %v, %v", ok, err)
	}
	retried := deferred
	retried.ID, retried.Status, retried.Tries, retried.At = id, model.AttemptPending, 2, time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	if _, ok, err := w.st.WriteAttempt(ctx, run.ID, w.mailing.ID, retried, deferred); err != nil || !ok {
		t.Fatalf("pending again: %v, %v", ok, err)
	}
	time.Sleep(300 * time.Millisecond) // the worker finds them later
	var logged bytes.Buffer
	w.svc.Log = slog.New(slog.NewTextHandler(&logged, nil))

	r := w.drain(t, run.ID)
	got := received(w.sink)
	if got[w.clients[0].Email] != 0 || got[w.clients[1].Email] != 0 || got[w.clients[2].Email] != 1 || got[w.clients[3].Email] != 1 {
		t.Fatalf("received %v", got)
	}
	for _, a := range w.attempts(t, run.ID) {
		switch a.Email {
		case w.clients[0].Email:
			if a.Status != model.AttemptFailure || a.Response != "interrupted: outcome unknown" {
				t.Errorf("interrupted attempt %+v", a)
			}
			if a.AttemptedAt.Before(claimedFrom.Add(-time.Second)) || a.AttemptedAt.After(claimedTo) {
				t.Errorf("interrupted send dated %v, want when it was claimed (%v to %v)", a.AttemptedAt, claimedFrom, claimedTo)
			}
		case w.clients[1].Email:
			if a.Status != model.AttemptFailure || a.Response != "interrupted: outcome unknown" || a.Tries != 2 {
				t.Errorf("interrupted try %+v", a)
			}
			if !a.AttemptedAt.Equal(retried.At) {
				t.Errorf("interrupted try dated %v, want when it was made (%v)", a.AttemptedAt, retried.At)
			}
		}
	}
	if r.Succeeded != 2 || r.Failed != 2 || r.FinishedAt == nil {
		t.Fatalf("run %+v", r)
	}
	want := "sends interrupted, outcome unknown: recorded as failures, not sent again\" run_id=" + strconv.FormatInt(run.ID, 10) + " seq=0 recipients=2"
	if !strings.Contains(logged.String(), want) {
		t.Errorf("log %q, want a warning with %q", logged.String(), want)
	}
}

// A chunk's statement leaves out what the chunk does not need (completing
// an attempt written while its send was tried again, marking a bounce):
// chunks needing each combination, one after the other in a batch, are
// all written, and written once.
func TestChunksWithAndWithoutRetriesAndBounces(t *testing.T) {
	w := newWorld(t, 4)
	w.svc.BatchSize = 100 // one batch takes them all
	ctx := context.Background()
	run, stmts, claims := w.claimFirst(t, 4)
	at := time.Now()
	result := func(c store.Claim, status model.AttemptStatus, code, tries int) store.AttemptResult {
		return store.AttemptResult{ClientID: c.ClientID, Email: c.Email, Status: status, Code: code, Response: fmt.Sprint(code), Tries: tries, At: at}
	}
	// The second recipient's first try failed for a while: its attempt is
	// written, pending its next try.
	pending := result(claims[1], model.AttemptPending, 0, 1)
	id, ok, err := w.st.WriteAttempt(ctx, run.ID, w.mailing.ID, pending, store.AttemptResult{})
	if err != nil || !ok {
		t.Fatalf("pending attempt: %v %v", ok, err)
	}
	retried := result(claims[1], model.AttemptSuccess, 250, 2)
	retried.ID = id
	bounced := result(claims[2], model.AttemptFailure, 550, 1)
	bounced.Bounced = true
	chunks := []struct {
		rs   []store.AttemptResult
		want store.RunCounts
	}{
		{[]store.AttemptResult{result(claims[0], model.AttemptSuccess, 250, 1)}, store.RunCounts{Succeeded: 1}},
		{[]store.AttemptResult{retried, bounced}, store.RunCounts{Succeeded: 1, Failed: 1, Bounced: 1}},
		{[]store.AttemptResult{result(claims[3], model.AttemptFailure, 450, 3)}, store.RunCounts{Failed: 1}},
		{[]store.AttemptResult{retried}, store.RunCounts{}}, // completed already
		{[]store.AttemptResult{bounced}, store.RunCounts{}}, // written already
	}
	bouncedClients := func() []int64 {
		t.Helper()
		var ids []int64
		if err := w.db.NewSelect().Table("clients").Column("id").Where("bounced_at IS NOT NULL").Scan(ctx, &ids); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	for i, c := range chunks {
		if got, _, err := stmts.Record(ctx, c.rs, nil); err != nil || got != c.want {
			t.Fatalf("chunk %d: written %+v, %v; want %+v", i, got, err, c.want)
		}
		if want := min(i, 1); len(bouncedClients()) != want { // from the second chunk on
			t.Fatalf("after chunk %d: bounced clients %v, want %d", i, bouncedClients(), want)
		}
	}
	want := map[string]struct {
		status model.AttemptStatus
		tries  int
	}{
		claims[0].Email: {model.AttemptSuccess, 1}, claims[1].Email: {model.AttemptSuccess, 2},
		claims[2].Email: {model.AttemptFailure, 1}, claims[3].Email: {model.AttemptFailure, 3},
	}
	as := w.attempts(t, run.ID)
	if len(as) != len(want) {
		t.Fatalf("attempts %+v", as)
	}
	for _, a := range as {
		if wa := want[a.Email]; a.Status != wa.status || a.Tries != wa.tries {
			t.Errorf("%s: %s after %d tries, want %+v", a.Email, a.Status, a.Tries, wa)
		}
	}
	if bouncedIDs := bouncedClients(); len(bouncedIDs) != 1 || bouncedIDs[0] != claims[2].ClientID {
		t.Errorf("bounced clients %v, want %d", bouncedIDs, claims[2].ClientID)
	}
}

// The worker's send metrics count what the chunks wrote: deliveries,
// failures, and bounces apart from the other failures.
func TestSendMetrics(t *testing.T) {
	w := newWorld(t, 4)
	reg := metrics.New(nil)
	w.svc.Sends, w.svc.RetryDelays = reg.Sends(), nil
	w.sink.RejectRcpt(func(to string) *smtp.SMTPError {
		switch to {
		case w.clients[0].Email:
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		case w.clients[1].Email:
			return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "rejected"}
		}
		return nil
	})
	run, err := w.svc.StartManual(context.Background(), w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := w.drain(t, run.ID); r.Succeeded != 2 || r.Failed != 2 {
		t.Fatalf("run %+v", r)
	}
	rec := httptest.NewRecorder()
	reg.Handler("").ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`rassylka_sends_total{outcome="success"} 2`, `rassylka_sends_total{outcome="failure"} 1`, `rassylka_sends_total{outcome="bounce"} 1`} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, rec.Body.String())
		}
	}
}

// Outcomes go to the prepared statement as array literals: whatever a
// server replies must come back as it was.
func TestResultsKeepTheirText(t *testing.T) {
	w := newWorld(t, 0)
	w.svc.BatchSize = 100 // one batch takes them all
	replies := []string{`550 "quoted", {braced}, back\\slash\\`, "NULL", "", "  spaced  ", "multi\nline\ttab", "ошибка 450 ✉", `\"`}
	ctx := context.Background()
	var ids []int64
	for i := range replies {
		c := &model.Client{OwnerID: w.owner.ID, Email: fmt.Sprintf("c%d@example.com", i)}
		if err := w.st.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	if err := w.st.UpdateMailing(ctx, w.owner.ID, w.mailing, ids); err != nil {
		t.Fatal(err)
	}
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	stmts := w.prepareFirstBatch(t, run)
	claims, err := claimNext(ctx, stmts, 0, len(replies))
	if err != nil || len(claims) != len(replies) {
		t.Fatalf("claims %+v, %v", claims, err)
	}
	at := time.Date(2026, 3, 29, 1, 30, 0, 123456000, time.FixedZone("", 3*3600))
	want := map[string]store.AttemptResult{}
	var rs []store.AttemptResult
	for i, c := range claims {
		r := store.AttemptResult{ClientID: c.ClientID, Email: c.Email, Status: model.AttemptFailure, Code: 400 + i, Response: replies[i], Tries: i + 1, At: at}
		if i == 0 {
			r.Status, r.Code = model.AttemptSuccess, 0
		}
		rs = append(rs, r)
		want[c.Email] = r
	}
	if got, _, err := stmts.Record(ctx, rs, nil); err != nil || got != (store.RunCounts{Succeeded: 1, Failed: len(replies) - 1}) {
		t.Fatalf("written %+v, %v", got, err)
	}
	if got, _, err := stmts.Record(ctx, rs, nil); err != nil || got != (store.RunCounts{}) {
		t.Fatalf("written again %+v, %v", got, err)
	}
	for _, a := range w.attempts(t, run.ID) {
		r := want[a.Email]
		code := 0
		if a.Code != nil {
			code = *a.Code
		}
		if a.Status != r.Status || code != r.Code || a.Response != r.Response || a.Tries != r.Tries || !a.AttemptedAt.Equal(r.At) {
			t.Errorf("%s: %s %d %q %d %v; want %+v", a.Email, a.Status, code, a.Response, a.Tries, a.AttemptedAt, r)
		}
	}
}

func TestTwoWorkersRaceForOneRun(t *testing.T) {
	w := newWorld(t, 12)
	w.svc.BatchSize = 4
	ctx := context.Background()
	run, _ := w.svc.StartManual(ctx, w.mailing.ID, nil)
	var wg sync.WaitGroup
	for worker := 0; worker < 2; worker++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; seq < 3; seq++ {
				if err := w.svc.ProcessBatch(ctx, run.ID, seq); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	w.drain(t, run.ID)
	got := received(w.sink)
	if len(got) != 12 {
		t.Fatalf("%d addresses received", len(got))
	}
	for addr, n := range got {
		if n != 1 {
			t.Errorf("%s received %d times", addr, n)
		}
	}
	if as := w.attempts(t, run.ID); len(as) != 12 {
		t.Fatalf("%d attempts", len(as))
	}
}

func TestDisabledBlockedAndWindowEnd(t *testing.T) {
	w := newWorld(t, 4)
	ctx := context.Background()
	if err := w.st.SetMailingDisabled(ctx, store.Own(w.owner.ID), w.mailing.ID, w.owner.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.StartManual(ctx, w.mailing.ID, nil); !errors.Is(err, sending.ErrDisabled) {
		t.Fatalf("disabled: %v", err)
	}
	_ = w.st.SetMailingDisabled(ctx, store.Own(w.owner.ID), w.mailing.ID, w.owner.ID, false)

	// Disabled mid-run: the batches stop, the rest is skipped.
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.ProcessBatch(ctx, run.ID, 0); err != nil { // 3 of 4 sent
		t.Fatal(err)
	}
	_ = w.st.SetMailingDisabled(ctx, store.Own(w.owner.ID), w.mailing.ID, w.owner.ID, true)
	r := w.drain(t, run.ID)
	if r.Succeeded != 3 || r.Skipped != 1 || r.FinishedAt == nil {
		t.Fatalf("disabled mid-run: %+v", r)
	}
	_ = w.st.SetMailingDisabled(ctx, store.Own(w.owner.ID), w.mailing.ID, w.owner.ID, false)

	// A blocked owner's mailings do not start.
	if _, err := w.st.SetBlocked(ctx, 0, w.owner.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.StartManual(ctx, w.mailing.ID, nil); !errors.Is(err, sending.ErrBlocked) {
		t.Fatalf("blocked: %v", err)
	}
	if _, err := w.st.SetBlocked(ctx, 0, w.owner.ID, false); err != nil {
		t.Fatal(err)
	}

	// The window closes while a run sends: it stops; the rest is skipped.
	w.sink.Reset()
	run2, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.svc.Now = func() time.Time { return w.mailing.EndsAt.Add(time.Second) }
	r2 := w.drain(t, run2.ID)
	if len(w.sink.Messages()) != 0 || r2.Skipped != 4 || r2.FinishedAt == nil {
		t.Fatalf("after the end: %d sent, run %+v", len(w.sink.Messages()), r2)
	}
	if _, err := w.svc.StartManual(ctx, w.mailing.ID, nil); !errors.Is(err, sending.ErrFinished) {
		t.Fatalf("manual run after the end: %v", err)
	}
}

// A run stopped before it reached everyone (the mailing switched off)
// counts those it left as unreached, and "Send to the rest" mails only
// them, once: not those reached, not those who unsubscribed, and a rest
// stopped in turn leaves a rest of its own, of the same full run.
func TestSendToTheRest(t *testing.T) {
	w := newWorld(t, 10) // batches of 3
	ctx := context.Background()
	if err := w.st.Unsubscribe(ctx, w.owner.ID, w.clients[9].Email); err != nil {
		t.Fatal(err)
	}
	disable := func(off bool) {
		t.Helper()
		if err := w.st.SetMailingDisabled(ctx, store.Own(w.owner.ID), w.mailing.ID, w.owner.ID, off); err != nil {
			t.Fatal(err)
		}
	}
	// stoppedAfterFirstBatch sends the run's first batch, then switches
	// the mailing off and lets the other batches stop.
	stoppedAfterFirstBatch := func(run *model.Run) *model.Run {
		t.Helper()
		if err := w.svc.ProcessBatch(ctx, run.ID, 0); err != nil {
			t.Fatal(err)
		}
		disable(true)
		defer disable(false)
		return w.drain(t, run.ID)
	}
	// Its one send is due: that mails everyone, and a rest is refused.
	if _, err := w.svc.StartRest(ctx, w.mailing.ID); !errors.Is(err, sending.ErrScheduledDue) {
		t.Fatalf("rest before any run, the send due: %v", err)
	}
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil) // takes the one-off send's place
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.StartRest(ctx, w.mailing.ID); !errors.Is(err, sending.ErrRunActive) {
		t.Fatalf("rest while the run sends: %v", err)
	}
	r := stoppedAfterFirstBatch(run)
	if r.Succeeded != 3 || r.Skipped != 7 || r.Unreached != 6 {
		t.Fatalf("run switched off after its first batch: %+v, want 3 sent, 7 skipped of which 6 unreached", r)
	}
	if full, n, err := w.st.RestToSend(ctx, w.mailing.ID); err != nil || full.ID != run.ID || n != 6 {
		t.Fatalf("rest to send: %+v, %d, %v", full, n, err)
	}
	disable(true)
	if _, err := w.svc.StartRest(ctx, w.mailing.ID); !errors.Is(err, sending.ErrDisabled) {
		t.Fatalf("rest of a mailing switched off: %v", err)
	}
	disable(false)

	rest, err := w.svc.StartRest(ctx, w.mailing.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rest.Total != 6 || rest.RestOf == nil || *rest.RestOf != run.ID || rest.Trigger != model.TriggerManual {
		t.Fatalf("rest run %+v", rest)
	}
	if _, err := w.svc.StartRest(ctx, w.mailing.ID); !errors.Is(err, sending.ErrRunActive) {
		t.Fatalf("rest while the rest sends: %v", err)
	}
	if r := stoppedAfterFirstBatch(rest); r.Succeeded != 3 || r.Skipped != 3 || r.Unreached != 3 {
		t.Fatalf("rest switched off after its first batch: %+v", r)
	}
	// Of the three left, one unsubscribes: the next rest leaves them out.
	if err := w.st.Unsubscribe(ctx, w.owner.ID, w.clients[8].Email); err != nil {
		t.Fatal(err)
	}
	rest2, err := w.svc.StartRest(ctx, w.mailing.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rest2.RestOf == nil || *rest2.RestOf != run.ID {
		t.Fatalf("a rest of a rest is of the full run %d: %+v", run.ID, rest2)
	}
	if r := w.drain(t, rest2.ID); r.Total != 2 || r.Succeeded != 2 || r.Skipped != 0 || r.Unreached != 0 {
		t.Fatalf("second rest %+v", r)
	}
	got := received(w.sink)
	for i, c := range w.clients {
		if want := btoi(i < 8); got[c.Email] != want {
			t.Errorf("%s received %d messages, want %d", c.Email, got[c.Email], want)
		}
	}
	if _, _, err := w.st.RestToSend(ctx, w.mailing.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rest to send once everyone is reached: %v", err)
	}
	if _, err := w.svc.StartRest(ctx, w.mailing.ID); !errors.Is(err, sending.ErrNoRest) {
		t.Errorf("rest once everyone is reached: %v", err)
	}
	// A run that reached everyone it could leaves no rest, though it
	// skipped those who unsubscribed.
	full, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := w.drain(t, full.ID); r.Succeeded != 8 || r.Skipped != 2 || r.Unreached != 0 {
		t.Fatalf("full run %+v", r)
	}
	if _, err := w.svc.StartRest(ctx, w.mailing.ID); !errors.Is(err, sending.ErrNoRest) {
		t.Errorf("rest of a run that reached everyone: %v", err)
	}
}

// The rest takes in the sends that failed for the time being, so that
// neither order of "Retry failed" and "Send to the rest" loses them: a
// rest sent first left the full run's failures out, and a retry of the
// rest took only its own. A retry switched off part-way is followed by a
// rest too, which mails the failures it did not get to (a retry of it
// took only its own failures, and those were forgotten).
func TestRestTakesTemporaryFailuresAndStoppedRetries(t *testing.T) {
	w := newWorld(t, 7) // batches of 3
	ctx := context.Background()
	w.svc.RetryDelays = nil // a temporary failure is recorded at once
	w.sink.RejectRcpt(func(to string) *smtp.SMTPError {
		if to == w.clients[0].Email || to == w.clients[1].Email {
			return busy
		}
		return nil
	})
	disable := func(off bool) {
		t.Helper()
		if err := w.st.SetMailingDisabled(ctx, store.Own(w.owner.ID), w.mailing.ID, w.owner.ID, off); err != nil {
			t.Fatal(err)
		}
	}
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.ProcessBatch(ctx, run.ID, 0); err != nil { // 0, 1 fail for now, 2 delivered
		t.Fatal(err)
	}
	disable(true)
	if r := w.drain(t, run.ID); r.Failed != 2 || r.Succeeded != 1 || r.Unreached != 4 {
		t.Fatalf("run switched off: %+v", r)
	}
	disable(false)
	w.sink.RejectRcpt(func(to string) *smtp.SMTPError {
		if to == w.clients[1].Email {
			return busy
		}
		return nil
	})
	rest, err := w.svc.StartRest(ctx, w.mailing.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := w.drain(t, rest.ID); r.Total != 6 || r.Succeeded != 5 || r.Failed != 1 {
		t.Fatalf("the rest, with the two failed for now: %+v", r)
	}
	w.sink.RejectRcpt(nil)
	retry, err := w.svc.StartManual(ctx, w.mailing.ID, &rest.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := w.drain(t, retry.ID); r.Total != 1 || r.Succeeded != 1 {
		t.Fatalf("retry of the rest: %+v", r)
	}
	got := received(w.sink)
	for _, c := range w.clients {
		if got[c.Email] != 1 {
			t.Errorf("%s received %d messages, want 1", c.Email, got[c.Email])
		}
	}

	// A full run whose four first recipients fail for now; their retry is
	// switched off after its first batch; the rest mails the one it left.
	w.sink.Reset()
	w.sink.RejectRcpt(func(to string) *smtp.SMTPError {
		if to <= w.clients[3].Email {
			return busy
		}
		return nil
	})
	full, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := w.drain(t, full.ID); r.Failed != 4 || r.Unreached != 0 {
		t.Fatalf("full run %+v", r)
	}
	if _, err := w.svc.StartRest(ctx, w.mailing.ID); !errors.Is(err, sending.ErrNoRest) {
		t.Fatalf("rest of a run that stopped nowhere: %v", err)
	}
	w.sink.RejectRcpt(nil)
	retry, err = w.svc.StartManual(ctx, w.mailing.ID, &full.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.ProcessBatch(ctx, retry.ID, 0); err != nil {
		t.Fatal(err)
	}
	disable(true)
	if r := w.drain(t, retry.ID); r.Succeeded != 3 || r.Unreached != 1 {
		t.Fatalf("retry switched off: %+v", r)
	}
	disable(false)
	rest, err = w.svc.StartRest(ctx, w.mailing.ID)
	if err != nil {
		t.Fatalf("rest after a retry switched off: %v", err)
	}
	if r := w.drain(t, rest.ID); r.Total != 1 || r.Succeeded != 1 {
		t.Fatalf("the rest of the retry: %+v", r)
	}
	got = received(w.sink)
	for _, c := range w.clients { // 4 to 6 by the full run, 0 to 2 by the retry, 3 by the rest
		if got[c.Email] != 1 {
			t.Errorf("%s received %d messages from the full run, its retry and the rest, want 1", c.Email, got[c.Email])
		}
	}
}

// Only a run stopped by its mailing counts those it did not reach: one
// that went to its end counts none, even when a skipped recipient may be
// mailed again by then (a bounce cleared meanwhile). And no rest starts
// while a scheduled send, which mails everyone, is due.
func TestUnreachedOnlyWhenStopped(t *testing.T) {
	w := newWorld(t, 3)
	ctx := context.Background()
	if err := w.st.MarkBounced(ctx, []int64{w.clients[0].ID}); err != nil {
		t.Fatal(err)
	}
	w.svc.Sender = &afterSends{Sender: w.pool, hook: func(int64) {
		if err := w.st.ClearBounce(ctx, w.owner.ID, w.clients[0].ID); err != nil {
			t.Error(err)
		}
	}}
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := w.drain(t, run.ID); r.Succeeded != 2 || r.Skipped != 1 || r.Unreached != 0 {
		t.Fatalf("a run that went to its end: %+v", r)
	}
	if _, _, err := w.st.RestToSend(ctx, w.mailing.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rest offered after a run that went to its end: %v", err)
	}

	// Left unreached by a switch-off, with a scheduled send due.
	if _, err := w.db.ExecContext(ctx, "UPDATE runs SET unreached = 1 WHERE id = ?", run.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.ExecContext(ctx, "UPDATE mailings SET next_run_at = now() - interval '1 second' WHERE id = ?", w.mailing.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.StartRest(ctx, w.mailing.ID); !errors.Is(err, sending.ErrScheduledDue) {
		t.Errorf("rest while a scheduled send is due: %v", err)
	}
	if _, err := w.db.ExecContext(ctx, "UPDATE mailings SET next_run_at = NULL WHERE id = ?", w.mailing.ID); err != nil {
		t.Fatal(err)
	}
	rest, err := w.svc.StartRest(ctx, w.mailing.ID)
	if err != nil || rest.Total != 1 {
		t.Fatalf("rest %+v, %v", rest, err)
	}
}

// A worker shutting down mid-batch records what it sent and releases what
// it claimed but never sent: nothing is marked failed for the shutdown,
// and the batch resumed later mails each recipient once.
func TestShutdownReleasesUnsentClaims(t *testing.T) {
	w := newWorld(t, 12)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, 12, 2
	w.sink.Stall(150 * time.Millisecond)
	run, err := w.svc.StartManual(context.Background(), w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		w.sink.Wait(context.Background(), 2) //nolint:errcheck // the test checks the outcome below
		cancel()
	}()
	if err := w.svc.ProcessBatch(ctx, run.ID, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("ProcessBatch = %v, want context.Canceled", err)
	}
	sent := len(w.sink.Messages())
	as := w.attempts(t, run.ID)
	if sent == 0 || sent >= 12 || len(as) != sent {
		t.Fatalf("after shutdown: %d received, %d attempts (want every sent one recorded, the rest released)", sent, len(as))
	}
	for _, a := range as {
		if a.Status != model.AttemptSuccess {
			t.Fatalf("attempt after shutdown %+v", a)
		}
	}
	w.sink.Stall(0)
	r := w.drain(t, run.ID)
	if r.Succeeded != 12 || r.Failed != 0 || r.FinishedAt == nil {
		t.Fatalf("run %+v", r)
	}
	for addr, n := range received(w.sink) {
		if n != 1 {
			t.Fatalf("%s received %d times", addr, n)
		}
	}
	if got := len(received(w.sink)); got != 12 {
		t.Fatalf("%d addresses received, want 12", got)
	}
}

// "Send now" on a mailing whose every recipient was deleted is refused:
// it recorded an empty run and moved the mailing to running, which locks
// its message and times for editing.
// "Send now" on a one-off mailing before its send takes that send's
// place: when it comes due, no one is mailed again. A repeating
// mailing's planned send still goes.
func TestSendNowTakesTheOneOffSendsPlace(t *testing.T) {
	for _, repeat := range []model.Repeat{model.RepeatOnce, model.RepeatDaily} {
		w := newWorld(t, 2)
		ctx := context.Background()
		start := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		if _, err := w.db.ExecContext(ctx, "UPDATE mailings SET repeat = ?, starts_at = ?, next_run_at = ?, ends_at = ? WHERE id = ?",
			repeat, start, start, start.Add(72*time.Hour), w.mailing.ID); err != nil {
			t.Fatal(err)
		}
		run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.drain(t, run.ID)
		m, err := w.st.Mailing(ctx, w.mailing.ID)
		if err != nil {
			t.Fatal(err)
		}
		if (m.NextRunAt == nil) != (repeat == model.RepeatOnce) {
			t.Fatalf("%s: the send planned after Send now: %v", repeat, m.NextRunAt)
		}
		// The planned send's time comes.
		w.svc.Now = func() time.Time { return start.Add(time.Minute) }
		if err := w.svc.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		_, page, err := w.st.RunsPage(ctx, w.mailing.ID, store.NewPage(1, 10))
		if err != nil {
			t.Fatal(err)
		}
		if want := map[model.Repeat]int{model.RepeatOnce: 1, model.RepeatDaily: 2}[repeat]; page.Total != want {
			t.Errorf("%s: %d runs once the planned send came due, want %d", repeat, page.Total, want)
		}
	}
}

func TestManualRunOfAMailingWithNoRecipientsIsRefused(t *testing.T) {
	w := newWorld(t, 1)
	ctx := context.Background()
	if err := w.st.DeleteClient(ctx, w.owner.ID, w.clients[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.svc.StartManual(ctx, w.mailing.ID, nil); !errors.Is(err, sending.ErrNoRecipients) {
		t.Fatalf("start: %v, want ErrNoRecipients", err)
	}
	if _, err := w.st.LatestRun(ctx, w.mailing.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a run was recorded: %v", err)
	}
	m, err := w.st.Mailing(ctx, w.mailing.ID)
	if err != nil || m.Status != model.StatusCreated {
		t.Errorf("mailing %+v, %v; want it still created", m, err)
	}
}

// Retry failed sends again only to those still among the recipients.
func TestRetryLeavesOutRemovedRecipients(t *testing.T) {
	w := newWorld(t, 3)
	ctx := context.Background()
	w.sink.RejectRcpt(func(string) *smtp.SMTPError {
		return busy
	})
	w.svc.RetryDelays = nil
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := w.drain(t, run.ID); r.Failed != 3 {
		t.Fatalf("run %+v", r)
	}
	keep := []int64{w.clients[0].ID, w.clients[2].ID}
	m, err := w.st.MailingByID(ctx, store.Own(w.owner.ID), w.mailing.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.st.UpdateMailing(ctx, w.owner.ID, &m.Mailing, keep); err != nil {
		t.Fatal(err)
	}
	// A save from a page read before a status change is refused.
	if err := w.st.UpdateMailing(ctx, w.owner.ID, w.mailing, keep); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale save: %v, want ErrConflict", err)
	}
	w.sink.RejectRcpt(nil)
	retry, err := w.svc.StartManual(ctx, w.mailing.ID, &run.ID)
	if err != nil {
		t.Fatal(err)
	}
	r := w.drain(t, retry.ID)
	got := received(w.sink)
	if r.Total != 2 || r.Succeeded != 2 || got[w.clients[1].Email] != 0 || got[w.clients[0].Email] != 1 || got[w.clients[2].Email] != 1 {
		t.Fatalf("retry run %+v, received %v", r, got)
	}
}

// A run's sends show in the owner's cached statistics as soon as its batch
// ends: the worker renews the cache, no page action is needed.
func TestRunRenewsCachedStatistics(t *testing.T) {
	w := newWorld(t, 3)
	ctx := context.Background()
	w.svc.Stats = &stats.Service{Store: w.st, Redis: testkit.Redis(t), Log: w.svc.Log}
	sent := func() int64 {
		t.Helper()
		ov, err := w.svc.Stats.Overview(ctx, store.Own(w.owner.ID), 7, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		return ov.Figures.Succeeded
	}
	if got := sent(); got != 0 {
		t.Fatalf("before: %d", got)
	}
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := sent(); got != 0 { // read, and cached, while the run waits
		t.Fatalf("before the batches: %d", got)
	}
	w.drain(t, run.ID)
	if got := sent(); got != 3 {
		t.Fatalf("after the run: %d sent in the statistics, want 3", got)
	}
}

// Batches sent at once need one connection each for their locks plus at
// least one for statements, never more: with one spare connection, three
// batches at once all finish (the worker sizes its pool so).
func TestConcurrentBatchesShareOneSpareConnection(t *testing.T) {
	db := testkit.DB(t)
	w := newWorldOn(t, db, 9)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 3, 2, 2
	ctx := context.Background()
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(3 + 1)
	done := make(chan error, 3)
	for seq := range 3 {
		go func() { done <- w.svc.ProcessBatch(ctx, run.ID, seq) }()
	}
	for range 3 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("batches stuck waiting for connections")
		}
	}
	if r, _ := w.st.RunByID(ctx, run.ID); r.Succeeded != 9 || r.FinishedAt == nil {
		t.Fatalf("run %+v", r)
	}
}

// A late intermediate write (a retry's bookkeeping), by the attempt's id or
// by its recipient, never turns a recorded outcome (a success, or a failure
// recorded as interrupted by a batch that resumed) back into a failure or a
// pending try, nor adds a second attempt, and says so.
func TestWriteAttemptChangesOnlyWhatItWrote(t *testing.T) {
	w := newWorld(t, 1)
	ctx := context.Background()
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.drain(t, run.ID)
	as := w.attempts(t, run.ID)
	if len(as) != 1 || as[0].Status != model.AttemptSuccess {
		t.Fatalf("attempts %+v", as)
	}
	lateWrites := func(want model.Attempt) {
		t.Helper()
		for _, id := range []int64{want.ID, 0} {
			for _, st := range []model.AttemptStatus{model.AttemptFailure, model.AttemptPending} {
				// What this send would have written before: the try before.
				prev := store.AttemptResult{Status: model.AttemptPending, At: want.AttemptedAt}
				if st == model.AttemptPending {
					prev.Status = model.AttemptFailure
				}
				r := store.AttemptResult{ID: id, ClientID: w.clients[0].ID, Email: w.clients[0].Email, Status: st, Code: 451, Response: "451 late", Tries: 2, At: time.Now()}
				if _, ok, err := w.st.WriteAttempt(ctx, run.ID, w.mailing.ID, r, prev); err != nil || ok {
					t.Fatalf("late write %s by id %d: wrote %v, %v", st, id, ok, err)
				}
			}
		}
		if got := w.attempts(t, run.ID); len(got) != 1 || got[0].Status != want.Status || got[0].Tries != want.Tries || got[0].Response != want.Response {
			t.Fatalf("after late writes %+v, want %+v", got, want)
		}
	}
	lateWrites(as[0])

	// This worker set the attempt pending for another try and lost its
	// lock; the batch resumed elsewhere and recorded it as interrupted.
	pendingAt := time.Now()
	if _, err := w.db.ExecContext(ctx, "UPDATE attempts SET status = 'pending', attempted_at = ? WHERE id = ?", pendingAt, as[0].ID); err != nil {
		t.Fatal(err)
	}
	b, err := w.st.Batch(ctx, run.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.st.RecoverInterrupted(ctx, b); err != nil || n != 1 {
		t.Fatalf("recovered %d, %v", n, err)
	}
	recorded := w.attempts(t, run.ID)[0]
	r := store.AttemptResult{ID: as[0].ID, Status: model.AttemptFailure, Code: 451, Response: "451 late", Tries: 2, At: time.Now()}
	if _, ok, err := w.st.WriteAttempt(ctx, run.ID, w.mailing.ID, r, store.AttemptResult{Status: model.AttemptPending, At: pendingAt}); err != nil || ok {
		t.Fatalf("late write over the recorded interruption: wrote %v, %v", ok, err)
	}
	if got := w.attempts(t, run.ID); len(got) != 1 || got[0].Response != "interrupted: outcome unknown" || !got[0].AttemptedAt.Equal(recorded.AttemptedAt) {
		t.Fatalf("after the late write %+v", got)
	}
}

// A worker whose batch lock's connection breaks while a recipient waits to
// be tried again has lost the batch: another worker resumes and finishes
// it, keeping the recipient's temporary failure. The first worker must
// then neither send again nor leave the attempt pending (its last write
// would go nowhere): what it writes between tries goes on its lock's
// connection, which is gone.
func TestRetryStopsWhenItsBatchIsLost(t *testing.T) {
	w := newWorld(t, 1)
	w.svc.RetryDelays = []time.Duration{2 * time.Second}
	ctx := context.Background()
	w.sink.RejectRcpt(func(string) *smtp.SMTPError {
		return busy
	})
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- w.svc.ProcessBatch(ctx, run.ID, 0) }()
	deadline := time.Now().Add(10 * time.Second)
	for as := w.attempts(t, run.ID); len(as) == 0 || as[0].Status != model.AttemptFailure; as = w.attempts(t, run.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("no temporary failure written: %+v", as)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The lock's session ends (a network fault, a restart of its backend),
	// and with it the lock (waited for, up to 5 s: a resumed batch would
	// find it still held).
	var ended []bool
	if err := w.db.NewRaw(`SELECT pg_terminate_backend(pid, 5000) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(ctx, &ended); err != nil || len(ended) != 1 {
		t.Fatalf("ending the lock's session: %v, %v", ended, err)
	}
	w.sink.RejectRcpt(nil)
	if err := w.svc.ProcessBatch(ctx, run.ID, 0); err != nil {
		t.Fatalf("resumed batch: %v", err)
	}
	if err := <-first; err == nil {
		t.Fatal("the worker that lost its batch ended it without an error")
	}
	as := w.attempts(t, run.ID)
	if len(as) != 1 || as[0].Status != model.AttemptFailure || as[0].Tries != 1 {
		t.Fatalf("attempts %+v", as)
	}
	if n := len(w.sink.Messages()); n != 0 {
		t.Fatalf("%d messages sent by the worker that lost its batch", n)
	}
	if r, _ := w.st.RunByID(ctx, run.ID); r.FinishedAt == nil || r.Failed != 1 {
		t.Fatalf("run %+v", r)
	}
}

// A worker that dies while a recipient waits to be tried again leaves the
// temporary failure as it was (nothing was delivered, nothing is sent
// again by the batch); one that dies while the next try sends leaves the
// outcome unknown. Either way the recipient keeps one attempt.
func TestRecoveryBetweenAndDuringTries(t *testing.T) {
	w := newWorld(t, 3)
	ctx := context.Background()
	run, _, claims := w.claimFirst(t, 2)
	waiting, trying := claims[0], claims[1]
	for _, c := range claims {
		r := store.AttemptResult{ClientID: c.ClientID, Email: c.Email, Status: model.AttemptFailure, Code: 450, Response: "450 busy", Tries: 1, At: time.Now()}
		id, ok, err := w.st.WriteAttempt(ctx, run.ID, w.mailing.ID, r, store.AttemptResult{})
		if err != nil || !ok || id == 0 {
			t.Fatalf("write attempt: %d, %v, %v", id, ok, err)
		}
		if c == trying {
			prev := r
			r.ID, r.Status, r.At = id, model.AttemptPending, time.Now()
			if _, ok, err := w.st.WriteAttempt(ctx, run.ID, w.mailing.ID, r, prev); err != nil || !ok {
				t.Fatalf("pending again: %v, %v", ok, err)
			}
		}
	}
	r := w.drain(t, run.ID)
	if got := received(w.sink); len(got) != 1 || got[w.clients[2].Email] != 1 {
		t.Fatalf("received %v, want only the unclaimed recipient", got)
	}
	as := w.attempts(t, run.ID)
	if len(as) != 3 {
		t.Fatalf("attempts %+v", as)
	}
	for _, a := range as {
		switch a.Email {
		case waiting.Email:
			if a.Status != model.AttemptFailure || a.Code == nil || *a.Code != 450 || a.Tries != 1 {
				t.Errorf("waiting for its next try: %+v", a)
			}
		case trying.Email:
			if a.Status != model.AttemptFailure || a.Response != "interrupted: outcome unknown" {
				t.Errorf("during its next try: %+v", a)
			}
		}
	}
	if r.Succeeded != 1 || r.Failed != 2 || r.FinishedAt == nil {
		t.Fatalf("run %+v", r)
	}
}

// A client deleted while a batch sends to it keeps its attempt, with its
// address and no client, whether the outcome was written or lost.
func TestDeletedClientKeepsItsAttempt(t *testing.T) {
	w := newWorld(t, 3)
	ctx := context.Background()
	run, stmts, claims := w.claimFirst(t, 1)
	if err := w.st.DeleteClient(ctx, w.owner.ID, claims[0].ClientID); err != nil {
		t.Fatal(err)
	}
	rs := []store.AttemptResult{{ClientID: claims[0].ClientID, Email: claims[0].Email, Status: model.AttemptSuccess, Code: 250, Response: "250 ok", Tries: 1, At: time.Now()}}
	if got, _, err := stmts.Record(ctx, rs, nil); err != nil || got.Succeeded != 1 {
		t.Fatalf("written %+v, %v", got, err)
	}
	// The next recipient is claimed, deleted, and its worker dies.
	claims, err := claimNext(ctx, stmts, claims[0].ClientID, 1)
	if err != nil || len(claims) != 1 {
		t.Fatalf("claims %+v, %v", claims, err)
	}
	if err := w.st.DeleteClient(ctx, w.owner.ID, claims[0].ClientID); err != nil {
		t.Fatal(err)
	}
	r := w.drain(t, run.ID)
	byAddr := map[string]model.Attempt{}
	for _, a := range w.attempts(t, run.ID) {
		byAddr[a.Email] = a
	}
	sent, lost, last := byAddr[w.clients[0].Email], byAddr[w.clients[1].Email], byAddr[w.clients[2].Email]
	if sent.ClientID != nil || sent.Status != model.AttemptSuccess {
		t.Errorf("written after the delete: %+v", sent)
	}
	if lost.ClientID != nil || lost.Status != model.AttemptFailure || lost.Response != "interrupted: outcome unknown" {
		t.Errorf("lost after the delete: %+v", lost)
	}
	if last.ClientID == nil || last.Status != model.AttemptSuccess || len(byAddr) != 3 {
		t.Errorf("attempts %+v", byAddr)
	}
	if r.FinishedAt == nil || r.Succeeded != 2 || r.Failed != 1 {
		t.Fatalf("run %+v", r)
	}
}

// The outcomes of a chunk are written even when one of its clients is being
// deleted at that moment: the write waits for the delete, then runs again
// and keeps that client's attempt with its address and no client.
func TestResultsWriteOutlastsAClientDelete(t *testing.T) {
	w := newWorld(t, 2)
	ctx := context.Background()
	run, stmts, claims := w.claimFirst(t, 2)
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // committed below
	if _, err := tx.ExecContext(ctx, "DELETE FROM clients WHERE id = ?", claims[0].ClientID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var rs []store.AttemptResult
		for _, c := range claims {
			rs = append(rs, store.AttemptResult{ClientID: c.ClientID, Email: c.Email, Status: model.AttemptSuccess, Code: 250, Response: "250 ok", Tries: 1, At: time.Now()})
		}
		got, _, err := stmts.Record(ctx, rs, nil)
		if err == nil && got.Succeeded != 2 {
			err = fmt.Errorf("written %+v", got)
		}
		done <- err
	}()
	testkit.UntilLockWaited(t, w.db) // the write reaches the deleted client's key check and waits
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("results: %v", err)
	}
	as := w.attempts(t, run.ID)
	if len(as) != 2 {
		t.Fatalf("attempts %+v", as)
	}
	for _, a := range as {
		if a.Status != model.AttemptSuccess || (a.Email == claims[0].Email) != (a.ClientID == nil) {
			t.Errorf("attempt %+v", a)
		}
	}
}

// A client deleted while its send waits for another try, or while that
// try sends, keeps one attempt when the worker dies: the resumed batch
// finds it by address.
func TestDeletedClientDuringRetries(t *testing.T) {
	w := newWorld(t, 3)
	ctx := context.Background()
	run, _, claims := w.claimFirst(t, 2)
	for i, c := range claims {
		r := store.AttemptResult{ClientID: c.ClientID, Email: c.Email, Status: model.AttemptFailure, Code: 450, Response: "450 busy", Tries: 1, At: time.Now()}
		id, ok, err := w.st.WriteAttempt(ctx, run.ID, w.mailing.ID, r, store.AttemptResult{})
		if err != nil || !ok {
			t.Fatalf("write attempt: %v, %v", ok, err)
		}
		if i == 1 {
			prev := r
			r.ID, r.Status, r.At = id, model.AttemptPending, time.Now()
			if _, ok, err := w.st.WriteAttempt(ctx, run.ID, w.mailing.ID, r, prev); err != nil || !ok {
				t.Fatalf("pending again: %v, %v", ok, err)
			}
		}
		if err := w.st.DeleteClient(ctx, w.owner.ID, c.ClientID); err != nil {
			t.Fatal(err)
		}
	}
	r := w.drain(t, run.ID)
	byAddr := map[string][]model.Attempt{}
	for _, a := range w.attempts(t, run.ID) {
		byAddr[a.Email] = append(byAddr[a.Email], a)
	}
	waiting, trying := byAddr[claims[0].Email], byAddr[claims[1].Email]
	if len(waiting) != 1 || waiting[0].Status != model.AttemptFailure || waiting[0].Response != "450 busy" {
		t.Errorf("waiting for its next try: %+v", waiting)
	}
	if len(trying) != 1 || trying[0].Status != model.AttemptFailure || trying[0].Response != "interrupted: outcome unknown" {
		t.Errorf("during its next try: %+v", trying)
	}
	if got := received(w.sink); len(got) != 1 || r.FinishedAt == nil || r.Succeeded != 1 || r.Failed != 2 {
		t.Fatalf("received %v, run %+v", got, r)
	}
}

// Recipients are read several chunks ahead; claiming a chunk checks them
// again, so one who unsubscribed, bounced or was deleted since its read is
// neither claimed nor mailed.
func TestRecipientsReadAheadAreCheckedWhenClaimed(t *testing.T) {
	w := newWorld(t, 5)
	w.svc.BatchSize = 10 // one batch
	ctx := context.Background()
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	stmts := w.prepareFirstBatch(t, run)
	ids, err := stmts.Next(ctx, 0, 10)
	if err != nil || len(ids) != 5 {
		t.Fatalf("read %v, %v", ids, err)
	}
	if err := w.st.Unsubscribe(ctx, w.owner.ID, w.clients[0].Email); err != nil {
		t.Fatal(err)
	}
	if err := w.st.MarkBounced(ctx, []int64{ids[1]}); err != nil {
		t.Fatal(err)
	}
	if err := w.st.DeleteClient(ctx, w.owner.ID, ids[2]); err != nil {
		t.Fatal(err)
	}
	_, claims, err := stmts.Record(ctx, nil, ids)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Claim{
		{ClientID: ids[3], Email: w.clients[3].Email, FullName: w.clients[3].FullName},
		{ClientID: ids[4], Email: w.clients[4].Email, FullName: w.clients[4].FullName},
	}
	if !slices.Equal(claims, want) {
		t.Fatalf("claimed %+v, want %+v", claims, want)
	}
	var claimed []int64
	if err := w.db.NewRaw("SELECT claimed FROM run_batches WHERE run_id = ? AND seq = 0", run.ID).Scan(ctx, pgdialect.Array(&claimed)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(claimed, []int64{ids[3], ids[4]}) {
		t.Fatalf("the batch's row claims %v", claimed)
	}
	// Their outcomes are written and the claim cleared.
	var rs []store.AttemptResult
	for _, c := range claims {
		rs = append(rs, store.AttemptResult{ClientID: c.ClientID, Email: c.Email, Status: model.AttemptSuccess, Code: 250, Response: "250 ok", Tries: 1, At: time.Now()})
	}
	if got, _, err := stmts.Record(ctx, rs, nil); err != nil || got != (store.RunCounts{Succeeded: 2}) {
		t.Fatalf("written %+v, %v", got, err)
	}
	if err := w.db.NewRaw("SELECT claimed FROM run_batches WHERE run_id = ? AND seq = 0", run.ID).Scan(ctx, pgdialect.Array(&claimed)); err != nil || len(claimed) != 0 {
		t.Fatalf("claim left %v, %v", claimed, err)
	}
	r := w.drain(t, run.ID) // skipped: the unsubscribed, the bounced and the deleted client
	if r.Succeeded != 2 || r.Failed != 0 || r.Skipped != 3 || len(w.sink.Messages()) != 0 {
		t.Fatalf("run %+v, %d messages", r, len(w.sink.Messages()))
	}
}

// afterSends calls hook with the number of messages sent so far, after each
// send.
type afterSends struct {
	sending.Sender
	n    atomic.Int64
	hook func(n int64)
}

func (a *afterSends) Send(ctx context.Context, m mail.Message) mail.Result {
	r := a.Sender.Send(ctx, m)
	a.hook(a.n.Add(1))
	return r
}

// A task whose time runs out while its batch reads the next recipients
// (their table locked meanwhile) still records the chunk it had sent:
// nothing sent is left to be recorded as interrupted, nobody is mailed
// twice, and the batch resumes where it stopped.
func TestTaskEndingDuringAReadKeepsWhatWasSent(t *testing.T) {
	w := newWorld(t, 10)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, 1, 1 // reads of 8 recipients
	w.svc.HandOver = time.Nanosecond                            // no hand-over before the deadline
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	w.svc.Sender = &afterSends{Sender: w.pool, hook: func(n int64) {
		if n != 8 { // the next read waits for the lock until after the task's end
			return
		}
		tx, err := w.db.BeginTx(context.Background(), nil)
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := tx.ExecContext(context.Background(), "LOCK TABLE mailing_recipients IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Error(err)
		}
		go func() {
			<-ctx.Done()
			time.Sleep(300 * time.Millisecond)
			_ = tx.Rollback()
		}()
	}}
	run, err := w.svc.StartManual(context.Background(), w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.ProcessBatch(ctx, run.ID, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("batch ended with %v, want the task's deadline", err)
	}
	if as := w.attempts(t, run.ID); len(as) != 8 {
		t.Fatalf("%d attempts recorded when the task ended, want the 8 sent", len(as))
	}
	w.svc.Sender = w.pool
	w.drainSentOnce(t, run.ID, 10)
}

// A bounce is marked by the statement that records its attempt and claims
// the next chunk: when marking it fails, nothing of that statement holds
// (the next chunk is not claimed, so it is not recorded as interrupted
// without having been sent).
func TestBounceMarkedWithItsAttempt(t *testing.T) {
	w := newWorld(t, 3)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, 1, 1
	ctx := context.Background()
	w.sink.RejectRcpt(func(to string) *smtp.SMTPError {
		if to == w.clients[0].Email {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	})
	if _, err := w.db.ExecContext(ctx, `CREATE FUNCTION fail_bounce() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.bounced_at IS NOT NULL AND OLD.bounced_at IS NULL THEN RAISE EXCEPTION 'bounce not marked'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER fail_bounce BEFORE UPDATE ON clients FOR EACH ROW EXECUTE FUNCTION fail_bounce()`); err != nil {
		t.Fatal(err)
	}
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.ProcessBatch(ctx, run.ID, 0); err == nil || !strings.Contains(err.Error(), "bounce not marked") {
		t.Fatalf("batch ended with %v", err)
	}
	if n := len(w.sink.Messages()); n != 0 {
		t.Fatalf("%d messages sent after the failed write", n)
	}
	if _, err := w.db.ExecContext(ctx, `DROP TRIGGER fail_bounce ON clients`); err != nil {
		t.Fatal(err)
	}
	r := w.drain(t, run.ID)
	// The bounced recipient's outcome was lost with the statement: it is
	// recorded as interrupted. The others were never claimed before, and
	// are sent once now.
	if r.Succeeded != 2 || r.Failed != 1 || len(w.sink.Messages()) != 2 {
		t.Fatalf("run %+v, %d messages", r, len(w.sink.Messages()))
	}
	for _, a := range w.attempts(t, run.ID) {
		if a.Email != w.clients[0].Email && a.Status != model.AttemptSuccess {
			t.Errorf("%s: %s %q", a.Email, a.Status, a.Response)
		}
	}
}

// A batch whose task is about to time out stops claiming, records what it
// sent, and hands the rest of the batch to a new task (a large batch under
// a low MAIL_RATE outlasts a task's hour).
func TestBatchHandsOverBeforeItsTaskTimesOut(t *testing.T) {
	w := newWorld(t, 3)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 10, 1, 1
	// Always within HandOver of the deadline: the batch still sends a chunk
	// first (a task that handed over at once would only be followed by
	// another that does the same).
	w.svc.HandOver = 2 * time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	w.assertHandsOver(t, ctx, 1)
}

// A recipient waiting for its next try when the task nears its deadline is
// tried before the batch hands over: the next task would leave it with the
// failure of its first try.
func TestBatchHandsOverAfterTheWaitingRecipients(t *testing.T) {
	w := newWorld(t, 3)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 10, 2, 1
	w.svc.HandOver = 2 * time.Hour // always near the deadline, once something is sent
	w.svc.RetryDelays = []time.Duration{50 * time.Millisecond}
	w.svc.Sender = &deferOne{Sender: w.pool, to: w.clients[0].Email, class: mail.Temporary, hook: func() {}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	// The first chunk: r00 deferred, r01 sent; then the hand-over, after
	// r00's second try.
	w.assertHandsOver(t, ctx, 2)
	for _, a := range w.attempts(t, 1) {
		if a.Email == w.clients[0].Email && (a.Status != model.AttemptSuccess || a.Tries != 2) {
			t.Errorf("the deferred recipient: %s after %d tries, want success after 2", a.Status, a.Tries)
		}
	}
}

// scriptedServer answers every send with the class its phase says:
// Unreachable, then (phase 1) Temporary (451) for the next busy sends,
// and through the pool (delivered) after them. It counts the sends, and
// the most under way at once since reset.
type scriptedServer struct {
	sending.Sender
	phase    atomic.Int32 // 0: cannot be reached, 1: answers
	busy     atomic.Int64 // in phase 1, how many more sends are told "try later"
	sends    atomic.Int64
	inFlight atomic.Int64
	most     atomic.Int64
}

func (s *scriptedServer) Send(ctx context.Context, m mail.Message) mail.Result {
	s.sends.Add(1)
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for most := s.most.Load(); n > most && !s.most.CompareAndSwap(most, n); most = s.most.Load() {
	}
	time.Sleep(5 * time.Millisecond) // sends of one round overlap
	switch s.phase.Load() {
	case 0:
		return mail.Result{Class: mail.Unreachable, Reply: "connect to mail.example.test:25: connection refused", NoServer: true}
	}
	if s.busy.Add(-1) >= 0 {
		return mail.Result{Class: mail.Temporary, Code: 451, Reply: "451 4.3.0 try again later"}
	}
	return s.Sender.Send(ctx, m)
}

// While a batch waits for a server that cannot be reached, it asks it by
// one recipient at a time, not by each of those waiting (every try takes
// a connection's slot, up to the dial's timeout); and once the server
// answers, a "try later" gets the tries it always gets, however many
// tries found no server before.
func TestServerDownIsAskedByOneAndThenTriedAsUsual(t *testing.T) {
	w := newWorld(t, 4)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 10, 4, 4
	w.svc.RetryDelays = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}
	server := &scriptedServer{Sender: w.pool}
	w.svc.Sender = server
	run, err := w.svc.StartManual(context.Background(), w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *model.Run, 1)
	go func() { done <- w.drain(t, run.ID) }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("never: %s", what)
			}
		}
	}
	// The chunk's four first tries and their two more each, then the
	// waiting: one at a time.
	waitFor("the recipients' own tries", func() bool { return server.sends.Load() >= 12 })
	server.most.Store(0)
	waitFor("a while of waiting", func() bool { return server.sends.Load() >= 40 })
	if most := server.most.Load(); most != 1 {
		t.Errorf("%d sends at once to a server that cannot be reached, want 1", most)
	}
	// It answers "try later" to its next four sends (the one asking, then
	// three of those it wakes: at most two for any recipient, within the
	// two retries), then takes everything.
	server.busy.Store(4)
	server.phase.Store(1)
	var r *model.Run
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the run did not end once the server took the mail")
	}
	if r.Succeeded != 4 || r.Failed != 0 {
		t.Fatalf("run %+v, attempts %+v: want everyone mailed once the server answers", r, w.attempts(t, run.ID))
	}
}

// A batch waiting for a server that cannot be reached since it started
// hands over before its task's deadline all the same: those waiting are
// tried once more and keep their failure, and a new task has the rest.
func TestBatchWaitingForTheServerHandsOver(t *testing.T) {
	w := newWorld(t, 4)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 10, 3, 3
	w.svc.HandOver = 2 * time.Hour // near the deadline, once something is sent or waits
	// The last delay is long (past the window's end: the second try is the
	// last): those waiting are tried together before the hand-over, not
	// one at a time each that long apart.
	w.svc.RetryDelays = []time.Duration{10 * time.Millisecond, 2 * time.Hour}
	if err := w.sink.Down(); err != nil {
		t.Fatal(err)
	}
	run, err := w.svc.StartManual(context.Background(), w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.svc.ProcessBatch(ctx, run.ID, 0) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		cancel()
		<-done
		t.Fatal("the batch waited for the server past its hand-over, until its task's deadline")
	}
	as := w.attempts(t, run.ID)
	if len(as) != 3 {
		t.Fatalf("attempts %+v; want the first chunk's", as)
	}
	for _, a := range as {
		if a.Status != model.AttemptFailure || a.Tries != 2 {
			t.Errorf("attempt %+v; want a failure after its tries (no more) before the hand-over", a)
		}
	}
	pending, err := w.queue.ListPendingTasks("default")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(pending, func(ti *asynq.TaskInfo) bool {
		return strings.HasPrefix(ti.ID, task.BatchTaskID(run.ID, 0, "handover-"))
	}) {
		t.Fatalf("no hand-over task queued: %v", pending)
	}
}

// A worker told to stop (SIGTERM) stops claiming, records what it sent and
// hands the rest of its batches to new tasks.
func TestBatchHandsOverWhenTheWorkerStops(t *testing.T) {
	w := newWorld(t, 3)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 10, 1, 1
	stop := w.stopSignal(t)
	w.svc.Sender = &afterSends{Sender: w.pool, hook: func(n int64) {
		if n == 2 {
			stop()
		}
	}}
	w.assertHandsOver(t, context.Background(), 2)
	// A batch task taken while the worker stops does nothing (it comes
	// back later).
	w.stopSignal(t)()
	if err := w.svc.ProcessBatch(context.Background(), 1, 0); err == nil {
		t.Fatal("a batch started while the worker stops")
	}
}

// assertHandsOver processes the first batch of a new run with ctx and
// checks that it sent and recorded sent messages, queued a task for the
// rest, and that the rest is sent once by the next worker.
func (w *world) assertHandsOver(t *testing.T, ctx context.Context, sent int) {
	t.Helper()
	run, err := w.svc.StartManual(context.Background(), w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.ProcessBatch(ctx, run.ID, 0); err != nil {
		t.Fatal(err)
	}
	if n, as := len(w.sink.Messages()), w.attempts(t, run.ID); n != sent || len(as) != sent {
		t.Fatalf("%d messages sent and %d attempts recorded, want %d", n, len(as), sent)
	}
	pending, err := w.queue.ListPendingTasks("default")
	if err != nil {
		t.Fatal(err)
	}
	handedOver := 0
	for _, ti := range pending {
		if strings.HasPrefix(ti.ID, task.BatchTaskID(run.ID, 0, "handover-")) {
			handedOver++
		}
	}
	if handedOver != 1 {
		t.Fatalf("%d hand-over tasks queued, want 1", handedOver)
	}
	w.svc.Sender, w.svc.Stopping, w.svc.HandOver = w.pool, nil, 0
	w.drainSentOnce(t, run.ID, 3)
}

// The worker told to stop just as a batch finds its window closed: the
// batch ends as a closed window ends it (done, the rest skipped), not as a
// failed task.
func TestStopAsTheWindowCloses(t *testing.T) {
	w := newWorld(t, 3)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 10, 1, 1
	stop := w.stopSignal(t)
	var state atomic.Int32
	ends := w.mailing.EndsAt
	w.svc.Now = func() time.Time {
		switch state.Load() {
		case 1: // the second send's time
			state.Store(2)
		case 2: // the look at the window after it, once Stopping was looked at
			state.Store(3)
			stop()
			time.Sleep(20 * time.Millisecond) // the batch's send context ends too
			return ends
		case 3:
			return ends
		}
		return time.Now()
	}
	w.svc.Sender = &afterSends{Sender: w.pool, hook: func(n int64) {
		if n == 2 {
			state.Store(1)
		}
	}}
	run, err := w.svc.StartManual(context.Background(), w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.svc.ProcessBatch(context.Background(), run.ID, 0); err != nil {
		t.Fatalf("batch ended with %v", err)
	}
	b, err := w.st.Batch(context.Background(), run.ID, 0)
	if err != nil || b.DoneAt == nil || b.Skipped != 1 {
		t.Fatalf("batch %+v, %v: want it done with one skipped", b, err)
	}
	if n, as := len(w.sink.Messages()), w.attempts(t, run.ID); n != 2 || len(as) != 2 {
		t.Fatalf("%d sent, %d attempts", n, len(as))
	}
}

// closeWindowAfter starts a manual run whose window closes as its nth
// send ends (the clock reads the end from then on); with move, the owner
// moves the end a day later at that moment, unknown to the batch.
func (w *world) closeWindowAfter(t *testing.T, n int64, move bool) *model.Run {
	t.Helper()
	ctx := context.Background()
	ends := w.mailing.EndsAt
	var late atomic.Bool
	w.svc.Now = func() time.Time {
		if late.Load() {
			return ends
		}
		return time.Now()
	}
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	row, err := w.st.MailingByID(ctx, store.Own(w.owner.ID), w.mailing.ID)
	if err != nil {
		t.Fatal(err)
	}
	w.svc.Sender = &afterSends{Sender: w.pool, hook: func(sent int64) {
		if sent != n {
			return
		}
		if move {
			m := row.Mailing
			m.EndsAt = ends.Add(24 * time.Hour)
			if err := w.st.UpdateMailing(ctx, w.owner.ID, &m, nil); err != nil {
				t.Error(err)
			}
		}
		late.Store(true)
	}}
	return run
}

// The window closing while a chunk sends (a slow server) stops the chunk
// there: the recipients of it not sent yet are skipped, not mailed after
// the end. If the owner moved the end meanwhile, they are sent.
func TestWindowClosesWhileAChunkSends(t *testing.T) {
	for _, moved := range []bool{false, true} {
		t.Run(fmt.Sprintf("moved=%v", moved), func(t *testing.T) {
			w := newWorld(t, 6)
			w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, 6, 1 // one chunk of all six
			run := w.closeWindowAfter(t, 2, moved)
			r := w.drain(t, run.ID)
			sent, as := len(w.sink.Messages()), w.attempts(t, run.ID)
			if moved {
				if r.Succeeded != 6 || sent != 6 {
					t.Fatalf("run %+v, %d sent: want all six, in the window moved", r, sent)
				}
				return
			}
			if r.Succeeded != 2 || r.Skipped != 4 || sent != 2 || len(as) != 2 {
				t.Fatalf("run %+v, %d sent, %d attempts: want 2 sent and the 4 others skipped as the window closed", r, sent, len(as))
			}
		})
	}
}

// A recipient waiting for its next try, due in a chunk the window's end
// stops, waits on when the owner moved the end: it is tried again, not
// left with its failure.
func TestWindowMovedWhileAChunkSendsKeepsTheWaiting(t *testing.T) {
	w := newWorld(t, 3)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, 2, 1
	w.svc.RetryDelays = []time.Duration{time.Nanosecond}
	var refused atomic.Bool
	w.sink.RejectRcpt(func(to string) *smtp.SMTPError {
		if to == w.clients[0].Email && refused.CompareAndSwap(false, true) {
			return busy
		}
		return nil
	})
	// The first chunk (its first send told to try later), then the third
	// recipient: the waiting one is next.
	run := w.closeWindowAfter(t, 3, true)
	if r := w.drain(t, run.ID); r.Succeeded != 3 || r.Failed != 0 {
		t.Fatalf("run %+v: want all three sent, the one told to try later too", r)
	}
	// The case this is: the one told to try later was sent last, after
	// the window's end (as first read) had stopped a chunk.
	var order []string
	for _, m := range w.sink.Messages() {
		order = append(order, m.To[0])
	}
	if want := []string{w.clients[1].Email, w.clients[2].Email, w.clients[0].Email}; !slices.Equal(order, want) {
		t.Fatalf("delivered to %v, want %v", order, want)
	}
}

// A window its owner extends while a batch sends keeps the batch sending
// past the old end: the batch reads the end again before it stops.
func TestWindowExtendedWhileSending(t *testing.T) {
	w := newWorld(t, 6)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, 2, 1
	run := w.closeWindowAfter(t, 1, true)
	if r := w.drain(t, run.ID); r.Succeeded != 6 || r.Skipped != 0 {
		t.Fatalf("run %+v: want all 6 sent in the extended window", r)
	}
}

// The "Retry failed" button shows only while the last run has failures it
// would send again: none once their clients left the recipients.
func TestRetryableFailuresLeaveOutRemovedRecipients(t *testing.T) {
	w := newWorld(t, 2)
	ctx := context.Background()
	w.sink.RejectRcpt(func(to string) *smtp.SMTPError {
		if to == w.clients[0].Email {
			return busy
		}
		return nil
	})
	w.svc.RetryDelays = nil
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := w.drain(t, run.ID); r.Failed != 1 {
		t.Fatalf("run %+v", r)
	}
	if n, cut, err := w.st.RetryableFailures(ctx, run.ID); err != nil || n != 1 || cut != 0 {
		t.Fatalf("retryable failures: %d (%d cut off), %v; want one", n, cut, err)
	}
	m, err := w.st.MailingByID(ctx, store.Own(w.owner.ID), w.mailing.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.st.UpdateMailing(ctx, w.owner.ID, &m.Mailing, []int64{w.clients[1].ID}); err != nil {
		t.Fatal(err)
	}
	if n, _, err := w.st.RetryableFailures(ctx, run.ID); err != nil || n != 0 {
		t.Fatalf("retryable failures after the client left: %d, %v; want none", n, err)
	}
	if _, err := w.svc.StartManual(ctx, w.mailing.ID, &run.ID); !errors.Is(err, sending.ErrNoFailures) {
		t.Fatalf("retry: %v, want ErrNoFailures as the button's absence says", err)
	}
}

// A mailing deleted while one of its batches sends (its runs and attempts
// go with it) stops the batch cleanly: the task ends without an error, so
// the queue neither retries it nor archives it, and nothing more is sent.
func TestMailingDeletedWhileSending(t *testing.T) {
	w := newWorld(t, 6)
	ctx := context.Background()
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	w.sink.RejectRcpt(func(string) *smtp.SMTPError {
		once.Do(func() { // the owner deletes the mailing while its first mail goes
			if _, err := w.st.DeleteMailing(ctx, w.owner.ID, w.mailing.ID); err != nil {
				t.Error(err)
			}
		})
		return nil
	})
	for seq := 0; seq < 2; seq++ {
		if err := w.svc.ProcessBatch(ctx, run.ID, seq); err != nil {
			t.Errorf("batch %d of a deleted mailing: %v (the task would be retried)", seq, err)
		}
	}
	if n := len(w.sink.Messages()); n > w.svc.Chunk {
		t.Errorf("%d mails sent after the delete, want at most the chunk in flight (%d)", n, w.svc.Chunk)
	}
}

// A chunk that sends slowly (a slow server here; a MAIL_RATE alike) stops
// within about a second when its mailing is switched off or deleted or its
// owner blocked, and does not mail a recipient of it who unsubscribed
// meanwhile: the chunk's sends were all made, for half a minute at 2 a
// second, after the mailing had stopped.
func TestChunkSendingSlowlyStopsWithItsMailing(t *testing.T) {
	const n, pace = 16, 200 * time.Millisecond // one chunk: 3.2 s at one send at a time
	for _, what := range []string{"switched off", "deleted", "owner blocked", "unsubscribed", "address corrected"} {
		t.Run(what, func(t *testing.T) {
			w := newWorld(t, n)
			w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, n, 1
			w.sink.Stall(pace)
			ctx := context.Background()
			run, done := w.sendingUntil(t, 2)
			last := w.clients[n-1]
			var err error
			switch what {
			case "switched off":
				err = w.st.SetMailingDisabled(ctx, store.Own(w.owner.ID), w.mailing.ID, w.owner.ID, true)
			case "deleted":
				_, err = w.st.DeleteMailing(ctx, w.owner.ID, w.mailing.ID)
			case "owner blocked":
				_, err = w.st.SetBlocked(ctx, 0, w.owner.ID, true)
			case "unsubscribed":
				err = w.st.Unsubscribe(ctx, w.owner.ID, last.Email)
			case "address corrected":
				_, err = w.db.ExecContext(ctx, "UPDATE clients SET email = 'corrected@example.com' WHERE id = ?", last.ID)
			}
			if err != nil {
				t.Fatal(err)
			}
			at := len(w.sink.Messages())
			if err := <-done; err != nil && what != "deleted" {
				t.Fatal(err)
			}
			got := received(w.sink)
			if what == "address corrected" {
				if got[last.Email] != 0 || got["corrected@example.com"] != 1 || len(got) != n {
					t.Fatalf("received %v: want the corrected address mailed, not the old one", got)
				}
				if r := w.drain(t, run.ID); r.Succeeded != n {
					t.Fatalf("run %+v: want all %d sent", r, n)
				}
				return
			}
			if what == "unsubscribed" {
				if len(got) != n-1 || got[last.Email] != 0 {
					t.Fatalf("received %v: want everyone but the recipient who unsubscribed", got)
				}
				if r := w.drain(t, run.ID); r.Succeeded != n-1 || r.Skipped != 1 {
					t.Fatalf("run %+v: want %d sent and 1 skipped", r, n-1)
				}
				return
			}
			// A look a second after the chunk started: a send or two of
			// the pace then, and the one under way.
			if after := len(got) - at; after > int(2*time.Second/pace) {
				t.Fatalf("%d mails sent after the mailing stopped (%d before), want the chunk's sends stopped within about a second", after, at)
			}
			if what == "switched off" {
				if r := w.drain(t, run.ID); r.FinishedAt == nil || r.Succeeded != len(got) || r.Skipped != n-len(got) {
					t.Fatalf("run %+v, %d sent: want the rest skipped", r, len(got))
				}
			}
		})
	}
}

// A recipient who unsubscribes while their send waits for its turn under
// MAIL_RATE is not mailed: the wait ends with the next look at the chunk.
// (It was looked at before the wait only: at a low rate the wait lasts
// tens of seconds.)
func TestRecipientGoneWhileWaitingForTheRateIsNotMailed(t *testing.T) {
	const n = 6
	w := newWorld(t, n)
	sender, err := mail.NewSender(w.sink.URL(), "Shop <news@shop.example>", "mail.example.test")
	if err != nil {
		t.Fatal(err)
	}
	paced := mail.NewPool(sender.WithTimeout(2*time.Second), 4, rate.NewLimiter(1, 1)) // one a second: the fourth waits 3 s
	t.Cleanup(paced.Close)
	w.svc.Sender = paced
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, n, 4
	ctx := context.Background()
	run, done := w.sendingUntil(t, 1)
	waiting := w.clients[3] // its sender took it at the start, and waits its turn
	if err := w.st.Unsubscribe(ctx, w.owner.ID, waiting.Email); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := received(w.sink); got[waiting.Email] != 0 || len(got) != n-1 {
		t.Fatalf("received %v: want everyone but the recipient who unsubscribed while waiting", got)
	}
	if r := w.drain(t, run.ID); r.Succeeded != n-1 || r.Skipped != 1 {
		t.Fatalf("run %+v: want %d sent and 1 skipped", r, n-1)
	}
}

// A recipient deleted while the run sends, before its turn, is not mailed
// and is counted as skipped: the finished run's counts add up to its total
// (they showed "2 sent, 0 failed, 0 skipped of 3", a run that looked cut
// short).
func TestRecipientDeletedBeforeItsTurnIsSkipped(t *testing.T) {
	w := newWorld(t, 3)
	ctx := context.Background()
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.st.DeleteClient(ctx, w.owner.ID, w.clients[1].ID); err != nil {
		t.Fatal(err)
	}
	r := w.drain(t, run.ID)
	if got := received(w.sink); len(got) != 2 || got[w.clients[1].Email] != 0 {
		t.Fatalf("received %v", got)
	}
	if r.FinishedAt == nil || r.Total != 3 || r.Succeeded != 2 || r.Failed != 0 || r.Skipped != 1 {
		t.Fatalf("run %+v: want 2 sent and 1 skipped of 3", r)
	}
	// Closing it again (a batch task run twice) keeps the counts.
	if err := w.svc.ProcessBatch(ctx, run.ID, 0); err != nil {
		t.Fatal(err)
	}
	if r, _ := w.st.RunByID(ctx, run.ID); r.Total != 3 || r.Succeeded != 2 || r.Skipped != 1 {
		t.Fatalf("run closed again %+v", r)
	}
}

// An address corrected by the owner while the old one is being sent to:
// the old address's hard bounce is recorded with its attempt, but does not
// mark the client, whose corrected address has not bounced.
func TestBounceOfAnAddressCorrectedMeanwhile(t *testing.T) {
	w := newWorld(t, 1)
	ctx := context.Background()
	run, stmts, claims := w.claimFirst(t, 1)
	fixed := *w.clients[0]
	fixed.Email = "fixed@example.com"
	if err := w.st.UpdateClient(ctx, w.owner.ID, &fixed); err != nil {
		t.Fatal(err)
	}
	rs := []store.AttemptResult{{ClientID: claims[0].ClientID, Email: claims[0].Email, Status: model.AttemptFailure, Code: 550,
		Response: "550 5.1.1 no such user", Tries: 1, At: time.Now(), Bounced: true}}
	if got, _, err := stmts.Record(ctx, rs, nil); err != nil || got.Failed != 1 {
		t.Fatalf("written %+v, %v", got, err)
	}
	cl, err := w.st.ClientByID(ctx, store.Own(w.owner.ID), fixed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cl.BouncedAt != nil {
		t.Errorf("the corrected address %s is marked bounced for the old one's bounce", cl.Email)
	}
	if as := w.attempts(t, run.ID); len(as) != 1 || as[0].Email != claims[0].Email || as[0].Status != model.AttemptFailure {
		t.Errorf("attempts %+v", as)
	}
}

// deferOne answers a temporary failure to the first try for one address
// (calling first, when set, before it answers) and calls hook, when set,
// before any later try for it.
type deferOne struct {
	sending.Sender
	to    string
	class mail.Class // of the failure: Temporary (the default) or Unreachable
	tries atomic.Int64
	first func()
	hook  func()
}

func (d *deferOne) Send(ctx context.Context, m mail.Message) mail.Result {
	if m.To.Address == d.to {
		if d.tries.Add(1) == 1 {
			if d.first != nil {
				d.first()
			}
			if d.class == mail.Unreachable {
				return mail.Result{Class: mail.Unreachable, Reply: "connect to mail.example.test:25: connection refused", NoServer: true}
			}
			return mail.Result{Class: mail.Temporary, Code: 451, Reply: "451 4.3.0 try again later"}
		}
		if d.hook != nil {
			d.hook()
		}
	}
	return d.Sender.Send(ctx, m)
}

// A chunk that waits to try a recipient again (the mail server down for a
// while) first adds what the batch recorded to the run's counters: the
// progress box does not stay at the figure of the run's first second
// while the mailing's own figures show the mails sent since.
func TestRunCountersMoveBeforeARetryWaits(t *testing.T) {
	for _, tc := range []struct {
		class mail.Class
		// r00 to r03 are recorded (two chunks) before r05's chunk. The
		// batch waits for r05 without holding its chunk, whether the
		// server answered or could not be reached: r04 is recorded
		// before r05's next try.
		want int
	}{{mail.Temporary, 5}, {mail.Unreachable, 5}} {
		w := newWorld(t, 6)
		w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, 2, 1
		w.svc.RetryDelays = []time.Duration{50 * time.Millisecond}
		run, err := w.svc.StartManual(context.Background(), w.mailing.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		seen := -1
		w.svc.Sender = &deferOne{Sender: w.pool, to: w.clients[5].Email, class: tc.class, hook: func() {
			r, err := w.st.RunByID(context.Background(), run.ID)
			if err != nil {
				t.Error(err)
				return
			}
			seen = r.Succeeded
		}}
		if r := w.drain(t, run.ID); r.Succeeded != 6 {
			t.Fatalf("run %+v", r)
		}
		if seen != tc.want {
			t.Errorf("class %d: the run counted %d sent when a retry was sent, want the %d recorded", tc.class, seen, tc.want)
		}
	}
}

// A recipient the server tells to try later waits for its next try
// without holding up the others: the batch goes on with its next chunks.
func TestARetryDoesNotHoldUpTheOthers(t *testing.T) {
	w := newWorld(t, 24)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, 4, 2
	// r01's next try is due once the others had ample time to be sent: a
	// try due sooner (the world's 10 ms) goes with whichever chunk is
	// under way then, and the hook below would hold that chunk.
	w.svc.RetryDelays = []time.Duration{time.Second}
	run, err := w.svc.StartManual(context.Background(), w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	// r01's second try waits until every other recipient has the mail. A
	// batch that held r01's chunk for it would never send them.
	held := false
	w.svc.Sender = &deferOne{Sender: w.pool, to: w.clients[1].Email, class: mail.Temporary, hook: func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := w.sink.Wait(ctx, 23); err != nil {
			held = true
		}
	}}
	r := w.drain(t, run.ID)
	if held || r.Succeeded != 24 {
		t.Fatalf("the others waited for r01's retry: %+v", r)
	}
	as := w.attempts(t, run.ID)
	for _, a := range as {
		if want := 1 + btoi(a.Email == w.clients[1].Email); a.Status != model.AttemptSuccess || a.Tries != want {
			t.Errorf("%s: %s after %d tries, want success after %d", a.Email, a.Status, a.Tries, want)
		}
	}
	if len(as) != 24 {
		t.Fatalf("%d attempts, want 24", len(as))
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A server that tells everyone to try later (its own trouble, not theirs)
// holds the batch: it claims no more recipients while the ones it has wait
// for their next tries, so an outage costs the tries of a chunk, not of
// the whole run.
func TestAServerDeferringEveryoneHoldsTheBatch(t *testing.T) {
	w := newWorld(t, 12)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, 4, 2
	w.svc.RetryDelays = []time.Duration{20 * time.Millisecond, 20 * time.Millisecond}
	var mu sync.Mutex
	var tries []string
	w.sink.RejectRcpt(func(to string) *smtp.SMTPError {
		mu.Lock()
		defer mu.Unlock()
		tries = append(tries, to)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	})
	run, err := w.svc.StartManual(context.Background(), w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := w.drain(t, run.ID); r.Failed != 12 {
		t.Fatalf("run %+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	// Every try of the first chunk (r00 to r03, three each) comes before
	// the first try of anyone after it.
	firstChunk := 0
	for i, to := range tries {
		if to < "r04" {
			firstChunk++
			continue
		}
		if firstChunk != 12 {
			t.Fatalf("try %d went to %s after %d tries of the first chunk, want all 12 first: %v", i, to, firstChunk, tries)
		}
		break
	}
	if len(tries) != 36 {
		t.Fatalf("%d tries, want 36 (three each)", len(tries))
	}
}

// A recipient told to try later is tried again from the batch's waiting
// list, after the claim of its chunk has moved on. When its client is
// deleted while that try sends and the worker dies, the resumed batch must
// still find the attempt (a deleted client's attempt is found by the
// address the claim holds) and record it as interrupted: it is neither
// left pending nor sent again.
func TestDeletedClientDuringARetryFromTheWaitingList(t *testing.T) {
	w := newWorld(t, 3)
	w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, 1, 1
	w.svc.RetryDelays = []time.Duration{20 * time.Millisecond}
	ctx := context.Background()
	run, err := w.svc.StartManual(ctx, w.mailing.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	victim := w.clients[0]
	w.svc.SalvageFor = -1 // the worker dies: it records nothing more
	w.svc.Sender = &deferOne{Sender: w.pool, to: victim.Email, hook: func() {
		if err := w.st.DeleteClient(ctx, w.owner.ID, victim.ID); err != nil {
			t.Error(err)
		}
		// The worker dies with the try under way: its lock's session ends.
		var ended []bool
		if err := w.db.NewRaw(`SELECT pg_terminate_backend(pid, 5000) FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(ctx, &ended); err != nil || len(ended) != 1 {
			t.Errorf("ending the lock's session: %v, %v", ended, err)
		}
	}}
	if err := w.svc.ProcessBatch(ctx, run.ID, 0); err == nil {
		t.Fatal("the worker that lost its batch ended it without an error")
	}
	w.svc.Sender = w.pool
	r := w.drain(t, run.ID)
	var got []model.Attempt
	for _, a := range w.attempts(t, run.ID) {
		if a.Email == victim.Email {
			got = append(got, a)
		}
	}
	if len(got) != 1 || got[0].Status != model.AttemptFailure || got[0].Response != "interrupted: outcome unknown" {
		t.Errorf("the deleted client's attempts: %+v, want one, interrupted", got)
	}
	if n := received(w.sink)[victim.Email]; n != 1 {
		t.Errorf("the deleted client received %d messages, want 1", n)
	}
	if r.FinishedAt == nil || r.Succeeded+r.Failed+r.Skipped != r.Total {
		t.Fatalf("run %+v: its counts do not add up", r)
	}
}

// A recipient whose server could not be reached is tried again in place
// after a wait, which may last minutes. The next try is made only if the
// recipient may still be mailed and the mailing may still send: one who
// unsubscribed meanwhile, or a mailing switched off meanwhile, keeps the
// failure and gets no mail.
func TestARetryInPlaceChecksFirst(t *testing.T) {
	for name, change := range map[string]string{
		"unsubscribed": "UPDATE clients SET unsubscribed_at = now() WHERE id = ?",
		"address":      "UPDATE clients SET email = 'moved@example.com' WHERE id = ?",
		"disabled":     "UPDATE mailings SET disabled_at = now() WHERE id = (SELECT mailing_id FROM mailing_recipients WHERE client_id = ?)",
	} {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, 3)
			w.svc.BatchSize, w.svc.Chunk, w.svc.Concurrency = 100, 3, 1
			w.svc.RetryDelays = []time.Duration{50 * time.Millisecond}
			run, err := w.svc.StartManual(context.Background(), w.mailing.ID, nil)
			if err != nil {
				t.Fatal(err)
			}
			target := w.clients[1]
			w.svc.Sender = &deferOne{Sender: w.pool, to: target.Email, class: mail.Unreachable, first: func() {
				if _, err := w.db.ExecContext(context.Background(), change, target.ID); err != nil {
					t.Error(err)
				}
			}}
			w.drain(t, run.ID)
			for _, m := range w.sink.Messages() {
				for _, to := range m.To {
					if to == target.Email {
						t.Errorf("%s was mailed on the try after the wait", to)
					}
				}
			}
			for _, a := range w.attempts(t, run.ID) {
				if a.Email == target.Email && (a.Status != model.AttemptFailure || a.Tries != 1) {
					t.Errorf("its attempt: %s after %d tries, want the first try's failure", a.Status, a.Tries)
				}
			}
		})
	}
}
