package stats_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"rassylka/app/model"
	"rassylka/app/stats"
	"rassylka/app/store"
	"rassylka/app/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

// seed is an owner with a mailing and a run to hang attempts on.
type seed struct {
	db      *bun.DB
	st      *store.Store
	owner   *model.User
	mailing *model.Mailing
	run     *model.Run
	clients []*model.Client
}

func newSeed(t *testing.T, db *bun.DB, email, zone string, clients int) *seed {
	t.Helper()
	ctx := context.Background()
	s := &seed{db: db, st: store.New(db)}
	now := time.Now()
	s.owner = &model.User{Email: email, FullName: "Owner", TimeZone: zone, EmailConfirmedAt: &now}
	if err := s.st.CreateUser(ctx, s.owner); err != nil {
		t.Fatal(err)
	}
	msg := &model.Message{OwnerID: s.owner.ID, Subject: "Hello", Body: "Hi"}
	if err := s.st.CreateMessage(ctx, msg); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := range clients {
		c := &model.Client{OwnerID: s.owner.ID, Email: "c" + string(rune('a'+i)) + "@example.com"}
		if err := s.st.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		s.clients = append(s.clients, c)
		ids = append(ids, c.ID)
	}
	start := now.Add(time.Hour).UTC().Truncate(time.Second)
	s.mailing = &model.Mailing{OwnerID: s.owner.ID, MessageID: msg.ID, StartsAt: start, EndsAt: start.Add(time.Hour),
		Repeat: model.RepeatOnce, Status: model.StatusCreated, NextRunAt: &start}
	if err := s.st.CreateMailing(ctx, s.mailing, ids); err != nil {
		t.Fatal(err)
	}
	s.run = &model.Run{MailingID: s.mailing.ID, Trigger: model.TriggerManual, StartedAt: now}
	if _, err := s.st.CreateRun(ctx, s.run); err != nil {
		t.Fatal(err)
	}
	return s
}

// attempt writes one attempt of client i as the send pipeline would, in
// the given status at the given time, and returns its id.
func (s *seed) attempt(t *testing.T, i int, status model.AttemptStatus, at time.Time) int64 {
	t.Helper()
	var id int64
	err := s.db.NewRaw(`INSERT INTO attempts (run_id, mailing_id, client_id, email, status, tries, attempted_at)
		VALUES (?, ?, ?, ?, ?, 1, ?) RETURNING id`, s.run.ID, s.mailing.ID, s.clients[i].ID, s.clients[i].Email, status, at).Scan(context.Background(), &id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (s *seed) update(t *testing.T, id int64, status model.AttemptStatus, at time.Time) {
	t.Helper()
	if _, err := s.db.ExecContext(context.Background(), "UPDATE attempts SET status = ?, attempted_at = ? WHERE id = ?", status, at, id); err != nil {
		t.Fatal(err)
	}
}

func day(t *testing.T, days []store.DayCount, date string) store.DayCount {
	t.Helper()
	for _, d := range days {
		if d.Day.Format(time.DateOnly) == date {
			return d
		}
	}
	t.Fatalf("no %s among %d days", date, len(days))
	return store.DayCount{}
}

// Attempts are counted on the day of the viewer's time zone: two sends a
// minute apart around midnight in Kolkata (UTC+5:30) fall on two days
// there and on one day in UTC. Pending claims are not counted; a claim
// completed later counts once, on the day it completed.
func TestFiguresAndDaysAcrossTimeZones(t *testing.T) {
	db := testkit.DB(t)
	ctx := context.Background()
	a := newSeed(t, db, "a@example.com", "Asia/Kolkata", 5)
	b := newSeed(t, db, "b@example.com", "UTC", 1)
	kolkata, _ := time.LoadLocation("Asia/Kolkata")

	late := time.Date(2026, 11, 20, 18, 29, 0, 0, time.UTC) // 23:59 on the 20th in Kolkata
	early := late.Add(2 * time.Minute)                      // 00:01 on the 21st in Kolkata
	a.attempt(t, 0, model.AttemptSuccess, late)
	a.attempt(t, 1, model.AttemptFailure, early)
	pending := a.attempt(t, 2, model.AttemptPending, early)
	retried := a.attempt(t, 3, model.AttemptFailure, late) // a 4xx between tries…
	b.attempt(t, 0, model.AttemptSuccess, late)            // another owner's

	svc := &stats.Service{Store: a.st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { return time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) }}
	ov, err := svc.Overview(ctx, store.Own(a.owner.ID), 7, kolkata)
	if err != nil {
		t.Fatal(err)
	}
	if len(ov.Days) != 7 || ov.Days[0].Day.Format(time.DateOnly) != "2026-11-16" || ov.Days[6].Day.Format(time.DateOnly) != "2026-11-22" {
		t.Fatalf("days %v … %v (%d), want 16 to 22 November", ov.Days[0].Day, ov.Days[len(ov.Days)-1].Day, len(ov.Days))
	}
	if d := day(t, ov.Days, "2026-11-20"); d.Succeeded != 1 || d.Failed != 1 {
		t.Errorf("20th in Kolkata: %+v, want 1 sent and 1 failed", d)
	}
	if d := day(t, ov.Days, "2026-11-21"); d.Succeeded != 0 || d.Failed != 1 {
		t.Errorf("21st in Kolkata: %+v, want 1 failed", d)
	}
	if f := ov.Figures; f.Succeeded != 1 || f.Failed != 2 || f.Clients != 5 || f.Created != 1 {
		t.Errorf("figures %+v", f)
	}
	utc, err := svc.Overview(ctx, store.Own(a.owner.ID), 7, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if d := day(t, utc.Days, "2026-11-20"); d.Succeeded != 1 || d.Failed != 2 {
		t.Errorf("20th in UTC: %+v, want 1 sent and 2 failed", d)
	}

	// …is tried again and delivered the next day; the claim completes.
	a.update(t, retried, model.AttemptPending, early)
	a.update(t, retried, model.AttemptSuccess, early.Add(24*time.Hour))
	a.update(t, pending, model.AttemptSuccess, early)
	ov, _ = svc.Overview(ctx, store.Own(a.owner.ID), 7, kolkata)
	if f := ov.Figures; f.Succeeded != 3 || f.Failed != 1 {
		t.Errorf("after the retry: figures %+v, want 3 sent and 1 failed", f)
	}
	if d := day(t, ov.Days, "2026-11-20"); d.Succeeded != 1 || d.Failed != 0 {
		t.Errorf("20th after the retry: %+v", d)
	}
	if d := day(t, ov.Days, "2026-11-21"); d.Succeeded != 1 || d.Failed != 1 {
		t.Errorf("21st after the retry: %+v", d)
	}
	if d := day(t, ov.Days, "2026-11-22"); d.Succeeded != 1 {
		t.Errorf("22nd after the retry: %+v", d)
	}

	// The site's figures are everyone's; one owner's are theirs only.
	site, _ := svc.Overview(ctx, store.Everyone(0), 7, time.UTC)
	if site.Figures.Succeeded != 4 || site.Figures.Clients != 6 {
		t.Errorf("site figures %+v", site.Figures)
	}
	mp, err := svc.Mailings(ctx, store.Own(a.owner.ID), store.NewPage(1, 10))
	if err != nil || len(mp.Rows) != 1 || mp.Rows[0].Succeeded != 3 || mp.Rows[0].Failed != 1 || mp.Rows[0].Runs != 1 {
		t.Fatalf("per mailing %+v, %v", mp, err)
	}
	up, err := svc.Users(ctx, store.NewPage(1, 10))
	if err != nil || len(up.Rows) != 2 || up.Rows[0].ID != a.owner.ID || up.Rows[0].Succeeded != 3 || up.Rows[1].Succeeded != 1 {
		t.Fatalf("per user %+v, %v", up, err)
	}

	// Deleting the mailing takes its figures with it.
	if _, err := a.st.DeleteMailing(ctx, a.owner.ID, a.mailing.ID); err != nil {
		t.Fatal(err)
	}
	ov, _ = svc.Overview(ctx, store.Own(a.owner.ID), 7, kolkata)
	if ov.Figures.Succeeded != 0 || ov.Figures.Failed != 0 {
		t.Errorf("after delete: %+v", ov.Figures)
	}
}

// Cached figures are served until the owner's data changes; a change to
// one owner's data also renews the site's figures, not other owners'.
func TestCacheInvalidation(t *testing.T) {
	db := testkit.DB(t)
	ctx := context.Background()
	a := newSeed(t, db, "a@example.com", "UTC", 3)
	b := newSeed(t, db, "b@example.com", "UTC", 1)
	svc := &stats.Service{Store: a.st, Redis: testkit.Redis(t), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	now := time.Now()
	read := func(sc store.Scope) int64 {
		t.Helper()
		ov, err := svc.Overview(ctx, sc, 7, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		return ov.Figures.Succeeded
	}
	a.attempt(t, 0, model.AttemptSuccess, now)
	if got := read(store.Own(a.owner.ID)); got != 1 {
		t.Fatalf("first read %d", got)
	}
	read(store.Own(b.owner.ID))
	read(store.Everyone(0))

	// Written behind the service's back: the cache still answers.
	a.attempt(t, 1, model.AttemptSuccess, now)
	b.attempt(t, 0, model.AttemptSuccess, now)
	if got := read(store.Own(a.owner.ID)); got != 1 {
		t.Fatalf("cached read %d, want the cached 1 (is the cache used?)", got)
	}
	svc.Changed(ctx, a.owner.ID)
	if got := read(store.Own(a.owner.ID)); got != 2 {
		t.Fatalf("after a change: %d, want 2", got)
	}
	if got := read(store.Everyone(0)); got != 3 {
		t.Fatalf("site after a change: %d, want 3", got)
	}
	if got := read(store.Own(b.owner.ID)); got != 0 {
		t.Fatalf("another owner's cached figures: %d, want still 0", got)
	}
}

// With Redis down the figures come from PostgreSQL.
func TestRedisDown(t *testing.T) {
	db := testkit.DB(t)
	a := newSeed(t, db, "a@example.com", "UTC", 1)
	a.attempt(t, 0, model.AttemptSuccess, time.Now())
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t)), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer dead.Close()
	svc := &stats.Service{Store: a.st, Redis: dead, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ov, err := svc.Overview(context.Background(), store.Own(a.owner.ID), 30, time.UTC)
	if err != nil || ov.Figures.Succeeded != 1 || len(ov.Days) != 30 {
		t.Fatalf("without Redis: %+v, %v", ov.Figures, err)
	}
	svc.Changed(context.Background(), a.owner.ID) // logged, not fatal
}

// The cache holds one entry per page that exists: asking for pages past
// the end (any ?page= a visitor types) shows the last page without
// storing a copy of it under every number asked for.
func TestCacheEntriesPerExistingPage(t *testing.T) {
	db := testkit.DB(t)
	ctx := context.Background()
	a := newSeed(t, db, "a@example.com", "UTC", 1)
	rdb := testkit.Redis(t)
	svc := &stats.Service{Store: a.st, Redis: rdb, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for n := 1; n <= 20; n++ {
		mp, err := svc.Mailings(ctx, store.Own(a.owner.ID), store.NewPage(n*1000, 50))
		if err != nil || len(mp.Rows) != 1 || mp.Page.Number != 1 {
			t.Fatalf("page %d: %+v, %v", n*1000, mp, err)
		}
		up, err := svc.Users(ctx, store.NewPage(n*1000, 50))
		if err != nil || len(up.Rows) != 1 || up.Page.Number != 1 {
			t.Fatalf("users page %d: %+v, %v", n*1000, up, err)
		}
	}
	keys, err := rdb.Keys(ctx, "stats:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Errorf("%d cache entries for one page of mailings and one of users, want 2: %v", len(keys), keys[:min(len(keys), 6)])
	}
}

// A mailing turns finished when its window closes, with nothing written
// to change the cache's generation: the figures cached while it was not
// finished yet are not read after that.
func TestCacheEndsWhenAWindowCloses(t *testing.T) {
	db := testkit.DB(t)
	ctx := context.Background()
	a := newSeed(t, db, "a@example.com", "UTC", 1)
	ends := time.Now().Add(4 * time.Second) // the reads before it are done long before
	if _, err := db.NewRaw(`UPDATE mailings SET starts_at = ?, ends_at = ? WHERE id = ?`,
		ends.Add(-time.Hour), ends, a.mailing.ID).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	svc := &stats.Service{Store: a.st, Redis: testkit.Redis(t), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	read := func() (store.Figures, string) {
		t.Helper()
		ov, err := svc.Overview(ctx, store.Own(a.owner.ID), 7, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		mp, err := svc.Mailings(ctx, store.Own(a.owner.ID), store.NewPage(1, 50))
		if err != nil || len(mp.Rows) != 1 {
			t.Fatalf("mailings: %+v, %v", mp, err)
		}
		return ov.Figures, mp.Rows[0].Status
	}
	if f, status := read(); f.Created != 1 || f.Finished != 0 || status != string(model.StatusCreated) {
		t.Fatalf("before the end: created %d, finished %d, row %q", f.Created, f.Finished, status)
	}
	read() // from the cache
	time.Sleep(time.Until(ends) + 100*time.Millisecond)
	if f, status := read(); f.Created != 0 || f.Finished != 1 || status != string(model.StatusFinished) {
		t.Fatalf("after the end: created %d, finished %d, row %q; want the mailing finished, not the cached figures", f.Created, f.Finished, status)
	}
}

// Where the clocks go forward at midnight (Santiago, 8 September 2024),
// the chart still has each day once, and the day before the change keeps
// its sends of the last hour: the missing midnight was taken for 23:00 of
// the day before, which doubled that day's bar and cut its end. In the
// first hour of that day before, the chart still ends with it.
func TestDaysWhereMidnightIsSkipped(t *testing.T) {
	db := testkit.DB(t)
	a := newSeed(t, db, "a@example.com", "America/Santiago", 2)
	santiago, err := time.LoadLocation("America/Santiago")
	if err != nil {
		t.Fatal(err)
	}
	a.attempt(t, 0, model.AttemptSuccess, time.Date(2024, 9, 7, 23, 30, 0, 0, santiago))
	a.attempt(t, 1, model.AttemptSuccess, time.Date(2024, 9, 8, 12, 0, 0, 0, santiago))
	for _, now := range []time.Time{time.Date(2024, 9, 10, 12, 0, 0, 0, santiago), time.Date(2024, 9, 7, 23, 45, 0, 0, santiago), time.Date(2024, 9, 7, 0, 30, 0, 0, santiago)} {
		svc := &stats.Service{Store: a.st, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }}
		ov, err := svc.Overview(context.Background(), store.Own(a.owner.ID), 7, santiago)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		var sent int64
		for _, d := range ov.Days {
			day := d.Day.In(santiago).Format(time.DateOnly)
			if seen[day] {
				t.Errorf("now %v: %s twice", now, day)
			}
			seen[day] = true
			sent += d.Succeeded
		}
		want := int64(2)
		if now.Day() == 7 {
			want = 1
		}
		if len(ov.Days) != 7 || sent != want {
			t.Errorf("now %v: %d days, %d sent; want 7 days, %d sent", now, len(ov.Days), sent, want)
		}
	}
}
