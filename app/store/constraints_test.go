package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/driver/pgdriver"

	"rassylka/app/model"
	"rassylka/app/store"
	"rassylka/app/testkit"
)

// fixture is one owner with a client, a message, a mailing and a run.
type fixture struct {
	owner   *model.User
	client  *model.Client
	message *model.Message
	mailing *model.Mailing
	run     *model.Run
}

func newFixture(t *testing.T, db *bun.DB, email string) fixture {
	t.Helper()
	ctx := context.Background()
	st := store.New(db)
	f := fixture{owner: &model.User{Email: email, FullName: "Owner"}}
	if err := st.CreateUser(ctx, f.owner); err != nil {
		t.Fatal(err)
	}
	f.client = &model.Client{OwnerID: f.owner.ID, Email: "ann@example.com", FullName: "Ann"}
	mustInsert(t, db, f.client)
	f.message = &model.Message{OwnerID: f.owner.ID, Subject: "Hello", Body: "Hi {{name}}"}
	mustInsert(t, db, f.message)
	start := time.Now().Add(time.Hour).UTC()
	f.mailing = &model.Mailing{OwnerID: f.owner.ID, MessageID: f.message.ID, StartsAt: start, EndsAt: start.Add(time.Hour),
		Repeat: model.RepeatOnce, Status: model.StatusCreated}
	mustInsert(t, db, f.mailing)
	mustInsert(t, db, &model.MailingRecipient{MailingID: f.mailing.ID, ClientID: f.client.ID})
	f.run = &model.Run{MailingID: f.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now()}
	mustInsert(t, db, f.run)
	return f
}

func mustInsert(t *testing.T, db bun.IDB, m any) {
	t.Helper()
	if _, err := db.NewInsert().Model(m).Returning("*").Exec(context.Background()); err != nil {
		t.Fatalf("insert %T: %v", m, err)
	}
}

// exec runs a statement that a constraint must refuse, in a savepoint-free
// way: each statement is its own transaction.
func exec(db *bun.DB, query string, args ...any) error {
	_, err := db.ExecContext(context.Background(), query, args...)
	return err
}

// assertRefused passes only for an integrity-constraint violation (SQLSTATE
// class 23), not for any other error such as a typo in the statement.
func assertRefused(t *testing.T, err error) {
	t.Helper()
	var pgErr pgdriver.Error
	if !errors.As(err, &pgErr) || !pgErr.IntegrityViolation() {
		t.Fatalf("want a constraint violation, got %v", err)
	}
}

func TestConstraints(t *testing.T) {
	db := testkit.DB(t)
	f := newFixture(t, db, "owner@example.com")
	other := newFixture(t, db, "other@example.com")
	ctx := context.Background()

	refused := []struct {
		name  string
		query string
		args  []any
	}{
		{"user email unique in any case", "INSERT INTO users (email) VALUES ('OWNER@Example.com')", nil},
		{"user role checked", "UPDATE users SET role = 'admin' WHERE id = ?", []any{f.owner.ID}},
		{"client email unique per owner in any case", "INSERT INTO clients (owner_id, email) VALUES (?, 'ANN@EXAMPLE.COM')", []any{f.owner.ID}},
		{"client needs an existing owner", "INSERT INTO clients (owner_id, email) VALUES (-1, 'x@example.com')", nil},
		{"subject is one line", "INSERT INTO messages (owner_id, subject, body) VALUES (?, E'Hi\\nBcc: x@evil', 'b')", []any{f.owner.ID}},
		{"subject not empty", "INSERT INTO messages (owner_id, subject, body) VALUES (?, '', 'b')", []any{f.owner.ID}},
		{"ends after starts", "UPDATE mailings SET ends_at = starts_at WHERE id = ?", []any{f.mailing.ID}},
		{"repeat checked", "UPDATE mailings SET repeat = 'hourly' WHERE id = ?", []any{f.mailing.ID}},
		{"status checked", "UPDATE mailings SET status = 'paused' WHERE id = ?", []any{f.mailing.ID}},
		{"mailing uses a message of its owner", "UPDATE mailings SET message_id = ? WHERE id = ?", []any{other.message.ID, f.mailing.ID}},
		{"used message cannot be deleted", "DELETE FROM messages WHERE id = ?", []any{f.message.ID}},
		{"recipient listed once", "INSERT INTO mailing_recipients (mailing_id, client_id) VALUES (?, ?)", []any{f.mailing.ID, f.client.ID}},
		{"run trigger checked", "INSERT INTO runs (mailing_id, trigger) VALUES (?, 'cron')", []any{f.mailing.ID}},
		{"scheduled run needs its due time", "INSERT INTO runs (mailing_id, trigger) VALUES (?, 'scheduled')", []any{f.mailing.ID}},
		{"attempt status checked", "INSERT INTO attempts (run_id, mailing_id, client_id, email, status) VALUES (?, ?, ?, 'a@b.c', 'bounced')",
			[]any{f.run.ID, f.mailing.ID, f.client.ID}},
		{"token purpose checked", "INSERT INTO tokens (user_id, purpose, token_hash, expires_at) VALUES (?, 'login', 'x', now())", []any{f.owner.ID}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			assertRefused(t, exec(db, tc.query, tc.args...))
		})
	}

	t.Run("another owner may have the same client email", func(t *testing.T) {
		third := &model.User{Email: "third@example.com"}
		if err := store.New(db).CreateUser(ctx, third); err != nil {
			t.Fatal(err)
		}
		if err := exec(db, "INSERT INTO clients (owner_id, email) VALUES (?, 'ANN@example.com')", third.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("one attempt per run and client", func(t *testing.T) {
		q := "INSERT INTO attempts (run_id, mailing_id, client_id, email) VALUES (?, ?, ?, 'ann@example.com')"
		if err := exec(db, q, f.run.ID, f.mailing.ID, f.client.ID); err != nil {
			t.Fatalf("first attempt: %v", err)
		}
		assertRefused(t, exec(db, q, f.run.ID, f.mailing.ID, f.client.ID))
	})

	t.Run("one run per scheduled occurrence", func(t *testing.T) {
		due := time.Now().UTC().Truncate(time.Second)
		q := "INSERT INTO runs (mailing_id, trigger, due_at) VALUES (?, 'scheduled', ?)"
		if err := exec(db, q, f.mailing.ID, due); err != nil {
			t.Fatal(err)
		}
		assertRefused(t, exec(db, q, f.mailing.ID, due))
	})

	t.Run("deleting a client keeps its attempts", func(t *testing.T) {
		c := &model.Client{OwnerID: f.owner.ID, Email: "gone@example.com"}
		mustInsert(t, db, c)
		mustInsert(t, db, &model.Attempt{RunID: f.run.ID, MailingID: f.mailing.ID, ClientID: &c.ID, Email: c.Email, Status: model.AttemptSuccess})
		if err := exec(db, "DELETE FROM clients WHERE id = ?", c.ID); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.NewRaw("SELECT count(*) FROM attempts WHERE email = 'gone@example.com' AND client_id IS NULL").Scan(ctx, &n); err != nil || n != 1 {
			t.Fatalf("attempts of the deleted client = %d, %v; want 1 kept with client_id NULL", n, err)
		}
	})

	t.Run("deleting a user removes what they own", func(t *testing.T) {
		if err := exec(db, "DELETE FROM users WHERE id = ?", other.owner.ID); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"clients", "messages", "mailings"} {
			var n int
			if err := db.NewRaw("SELECT count(*) FROM ? WHERE owner_id = ?", bun.Ident(table), other.owner.ID).Scan(ctx, &n); err != nil || n != 0 {
				t.Fatalf("%s left of a deleted user: %d, %v", table, n, err)
			}
		}
	})
}

func TestUsers(t *testing.T) {
	ctx := context.Background()
	db := testkit.DB(t)
	st := store.New(db)

	u := &model.User{Email: "  Mixed.Case@Example.COM "}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if u.ID == 0 || u.Email != "mixed.case@example.com" || u.Role != model.RoleUser || u.TimeZone != "UTC" {
		t.Fatalf("created %+v; want normalized email, role user, UTC", u)
	}
	if err := st.CreateUser(ctx, &model.User{Email: "MIXED.case@example.com"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate email: %v, want ErrConflict", err)
	}
	got, err := st.UserByEmail(ctx, "MIXED.CASE@example.com")
	if err != nil || got.ID != u.ID {
		t.Fatalf("UserByEmail = %+v, %v", got, err)
	}
	if _, err := st.UserByEmail(ctx, "nobody@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown email: %v, want ErrNotFound", err)
	}
	if _, err := st.UserByID(ctx, u.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown id: %v, want ErrNotFound", err)
	}
	m, err := st.SetUserRole(ctx, "mixed.case@EXAMPLE.com", model.RoleManager)
	if err != nil || m.Role != model.RoleManager {
		t.Fatalf("SetUserRole = %+v, %v", m, err)
	}
	if _, err := st.SetUserRole(ctx, "nobody@example.com", model.RoleManager); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetUserRole of unknown email: %v, want ErrNotFound", err)
	}
	if _, err := st.SetUserRole(ctx, u.Email, "root"); err == nil {
		t.Fatal("SetUserRole accepted an unknown role")
	}

	// A row saved before addresses were made canonical, with its domain in
	// ASCII form, is found by either form, by both lookups.
	if _, err := db.NewInsert().Model(&model.User{Email: "old@xn--bcher-kva.de", Role: model.RoleUser, TimeZone: "UTC"}).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := st.UserByEmail(ctx, "Old@Bücher.de"); err != nil || got.Email != "old@xn--bcher-kva.de" {
		t.Fatalf("UserByEmail of an older row = %+v, %v", got, err)
	}
	if m, err := st.SetUserRole(ctx, "Old@Bücher.de", model.RoleManager); err != nil || m.Email != "old@xn--bcher-kva.de" || m.Role != model.RoleManager {
		t.Fatalf("SetUserRole of an older row = %+v, %v", m, err)
	}
}

func TestPurgeTokens(t *testing.T) {
	ctx := context.Background()
	db := testkit.DB(t)
	st := store.New(db)
	u := &model.User{Email: "t@example.com"}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	mustInsert(t, db, &model.Token{UserID: u.ID, Purpose: model.TokenConfirmEmail, TokenHash: []byte("old"), ExpiresAt: now.Add(-48 * time.Hour)})
	mustInsert(t, db, &model.Token{UserID: u.ID, Purpose: model.TokenResetPassword, TokenHash: []byte("new"), ExpiresAt: now.Add(time.Hour)})
	n, err := st.PurgeTokens(ctx, now.Add(-24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("PurgeTokens = %d, %v; want 1", n, err)
	}
	if n, err := st.PurgeTokens(ctx, now.Add(-24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("second PurgeTokens = %d, %v; want 0", n, err)
	}
}

// A message edited while a run of a mailing using it is starting waits for
// that run and is then refused: it could otherwise slip past the check
// ("a run is sending it") before the run commits, and the run's first
// batch send the old text and the others the new one.
func TestMessageEditWaitsForARunStarting(t *testing.T) {
	db := testkit.DB(t)
	st := store.New(db)
	ctx := context.Background()
	f := newFixture(t, db, "race@example.com")
	if _, err := db.NewUpdate().Model(f.run).Set("finished_at = started_at").WherePK().Exec(ctx); err != nil {
		t.Fatal(err)
	}
	locked, release, started := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() { // a run starting, as sending.Service.start does
		started <- st.InTx(ctx, func(tx *store.Store) error {
			if _, err := tx.LockMailing(ctx, f.mailing.ID); err != nil {
				return err
			}
			close(locked)
			<-release
			_, err := tx.CreateRun(ctx, &model.Run{MailingID: f.mailing.ID, Trigger: model.TriggerManual, StartedAt: time.Now()})
			return err
		})
	}()
	<-locked
	edited := make(chan error, 1)
	go func() {
		edited <- st.UpdateMessage(ctx, f.owner.ID, &model.Message{ID: f.message.ID, Subject: "New", Body: "New text"})
	}()
	untilWaiting(t, db, func() {
		select {
		case err := <-edited:
			close(release)
			t.Fatalf("the edit ended (%v) while a run of the mailing was starting", err)
		default:
		}
	}, func() { close(release) })
	close(release)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if err := <-edited; !errors.Is(err, store.ErrSending) {
		t.Fatalf("edit after the run started: %v, want ErrSending", err)
	}
}

// The recipient's "Subscribe again" is not undone by an edit of the client
// or an import of its address that waited for it: they read the address's
// mark as of their start, which the recipient removed meanwhile, and
// wrote its old time back (the client unsubscribed again, and marked).
func TestSubscribeAgainIsNotUndoneByAWriteWaitingForIt(t *testing.T) {
	db := testkit.DB(t)
	st := store.New(db)
	ctx := context.Background()
	f := newFixture(t, db, "resub@example.com")
	writes := map[string]func() error{
		"edit": func() error {
			return st.UpdateClient(ctx, f.owner.ID, &model.Client{ID: f.client.ID, Email: f.client.Email, FullName: "Ann", Comment: "edited"})
		},
		"import": func() error {
			_, err := st.UpsertClients(ctx, f.owner.ID, []store.ImportRow{{Email: "ANN@example.com", FullName: "Ann Imported"}})
			return err
		},
	}
	for name, write := range writes {
		if err := st.Unsubscribe(ctx, f.owner.ID, f.client.Email); err != nil {
			t.Fatal(err)
		}
		err := whileHeld(t, db, func(tx *store.Store) error { return tx.Resubscribe(ctx, f.owner.ID, f.client.Email) }, write)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cl, err := st.ClientByID(ctx, store.Own(f.owner.ID), f.client.ID)
		if err != nil {
			t.Fatal(err)
		}
		marked, err := st.IsUnsubscribed(ctx, f.owner.ID, f.client.Email)
		if err != nil {
			t.Fatal(err)
		}
		if cl.UnsubscribedAt != nil || marked {
			t.Errorf("%s waiting for Subscribe again: unsubscribed at %v, marked %v", name, cl.UnsubscribedAt, marked)
		}
	}
}

// whileHeld runs hold in a transaction, starts write, and commits once
// write waits for a lock hold took; it returns write's error.
func whileHeld(t *testing.T, db *bun.DB, hold func(tx *store.Store) error, write func() error) error {
	t.Helper()
	ctx := context.Background()
	held, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- store.New(db).InTx(ctx, func(tx *store.Store) error {
			err := hold(tx)
			close(held)
			<-release
			return err
		})
	}()
	<-held
	wrote := make(chan error, 1)
	go func() { wrote <- write() }()
	untilWaiting(t, db, func() {
		select {
		case err := <-wrote:
			close(release)
			t.Fatalf("the write ended (%v) without waiting for the transaction held", err)
		default:
		}
	}, func() { close(release) })
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return <-wrote
}

// A mailing saved while one of its chosen clients, or its message, is
// being deleted: the client is left out of its recipients, and a message
// gone is ErrMessageGone, not a broken key (a 500, or "started sending
// meanwhile" for an edit).
func TestMailingSavedWhileItsPartsAreDeleted(t *testing.T) {
	db := testkit.DB(t)
	st := store.New(db)
	ctx := context.Background()
	f := newFixture(t, db, "parts@example.com")
	gone := &model.Client{OwnerID: f.owner.ID, Email: "gone@example.com"}
	mustInsert(t, db, gone)
	start := time.Now().Add(time.Hour).UTC()
	m := &model.Mailing{OwnerID: f.owner.ID, MessageID: f.message.ID, StartsAt: start, EndsAt: start.Add(time.Hour),
		Repeat: model.RepeatOnce, Status: model.StatusCreated}
	err := whileHeld(t, db, func(tx *store.Store) error { return tx.DeleteClient(ctx, f.owner.ID, gone.ID) },
		func() error { return st.CreateMailing(ctx, m, []int64{f.client.ID, gone.ID}) })
	if err != nil {
		t.Fatalf("saved while a chosen client was deleted: %v", err)
	}
	var recipients []int64
	if err := db.NewRaw("SELECT client_id FROM mailing_recipients WHERE mailing_id = ?", m.ID).Scan(ctx, &recipients); err != nil {
		t.Fatal(err)
	}
	if len(recipients) != 1 || recipients[0] != f.client.ID {
		t.Errorf("recipients %v, want only %d", recipients, f.client.ID)
	}

	other := &model.Message{OwnerID: f.owner.ID, Subject: "Other", Body: "Other"}
	mustInsert(t, db, other)
	m2 := &model.Mailing{OwnerID: f.owner.ID, MessageID: other.ID, StartsAt: start, EndsAt: start.Add(time.Hour),
		Repeat: model.RepeatOnce, Status: model.StatusCreated}
	err = whileHeld(t, db, func(tx *store.Store) error { return tx.DeleteMessage(ctx, f.owner.ID, other.ID) },
		func() error { return st.CreateMailing(ctx, m2, []int64{f.client.ID}) })
	if !errors.Is(err, store.ErrMessageGone) {
		t.Errorf("saved while its message was deleted: %v, want ErrMessageGone", err)
	}
	m.MessageID = other.ID
	if err := st.UpdateMailing(ctx, f.owner.ID, m, nil); !errors.Is(err, store.ErrMessageGone) {
		t.Errorf("edited to name a message deleted: %v, want ErrMessageGone", err)
	}
}

// untilWaiting returns once a session of the test's database waits for a
// lock. Before each look it calls check (which may end the test: the
// statement expected to wait has ended instead); after 10 s it calls
// giveUp and ends the test.
func untilWaiting(t *testing.T, db *bun.DB, check, giveUp func()) {
	t.Helper()
	waiting, err := testkit.AwaitLockWait(db, check)
	if err != nil {
		t.Fatal(err)
	}
	if !waiting {
		giveUp()
		t.Fatal("no statement waited for a lock")
	}
}

// A new mailing's or message's form sent twice at once (a double click
// without JavaScript) creates one: the second post waits for the first's
// transaction, then finds what it created. Sent again with other
// settings, the same form creates another, once.
func TestFormSentTwiceAtOnceCreatesOne(t *testing.T) {
	db := testkit.DB(t)
	st := store.New(db)
	ctx := context.Background()
	f := newFixture(t, db, "twice@example.com")
	start := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	mailing := func() *model.Mailing {
		return &model.Mailing{OwnerID: f.owner.ID, MessageID: f.message.ID, StartsAt: start, EndsAt: start.Add(time.Hour),
			Repeat: model.RepeatOnce, Status: model.StatusCreated, FormKey: "k1"}
	}
	// The first post's transaction is held open until the second waits
	// for it on the key.
	first, second := mailing(), mailing()
	err := whileHeld(t, db, func(tx *store.Store) error { return tx.CreateMailing(ctx, first, []int64{f.client.ID}) },
		func() error { return st.CreateMailing(ctx, second, []int64{f.client.ID}) })
	if !errors.Is(err, store.ErrDone) || second.ID != first.ID {
		t.Fatalf("the second post: %v (id %d), want done already, as the first (id %d)", err, second.ID, first.ID)
	}
	count := func(table string) int64 {
		n, err := db.NewSelect().Table(table).Where("owner_id = ?", f.owner.ID).Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count("mailings"); n != 2 { // the fixture's and the form's
		t.Fatalf("%d mailings, want 2", n)
	}

	// The form's page restored (Back), changed and sent: another mailing.
	third := mailing()
	third.EndsAt = start.Add(2 * time.Hour)
	if err := st.CreateMailing(ctx, third, []int64{f.client.ID}); err != nil || third.ID == first.ID {
		t.Fatalf("the form sent with another end: %v (id %d), want another mailing", err, third.ID)
	}
	// That changed form sent twice too creates it once.
	again := mailing()
	again.EndsAt = third.EndsAt
	if err := st.CreateMailing(ctx, again, []int64{f.client.ID}); !errors.Is(err, store.ErrDone) || again.ID != third.ID {
		t.Fatalf("the changed form sent twice: %v (id %d), want done already, as %d", err, again.ID, third.ID)
	}
	// Other recipients are other settings too; so is another message,
	// even with the same text.
	other := &model.Client{OwnerID: f.owner.ID, Email: "other@example.com"}
	mustInsert(t, db, other)
	if err := st.CreateMailing(ctx, mailing(), []int64{other.ID}); err != nil {
		t.Fatalf("the form sent with other recipients: %v, want another mailing", err)
	}
	lookalike := &model.Message{OwnerID: f.owner.ID, Subject: f.message.Subject, Body: f.message.Body}
	mustInsert(t, db, lookalike)
	withLookalike := mailing()
	withLookalike.MessageID = lookalike.ID
	if err := st.CreateMailing(ctx, withLookalike, []int64{f.client.ID}); err != nil || withLookalike.ID == first.ID {
		t.Fatalf("the form sent with another message of the same text: %v (id %d), want another mailing", err, withLookalike.ID)
	}
	if n := count("mailings"); n != 5 {
		t.Fatalf("%d mailings, want 5", n)
	}

	// Messages alike.
	message := func(body string) *model.Message {
		return &model.Message{OwnerID: f.owner.ID, Subject: "Once", Body: body, FormKey: "k2"}
	}
	m1, m2 := message("Once only"), message("Once only")
	err = whileHeld(t, db, func(tx *store.Store) error { return tx.CreateMessage(ctx, m1) },
		func() error { return st.CreateMessage(ctx, m2) })
	if !errors.Is(err, store.ErrDone) || m2.ID != m1.ID {
		t.Fatalf("the message form's second post: %v (id %d), want done already, as the first (id %d)", err, m2.ID, m1.ID)
	}
	changed := message("Twice")
	if err := st.CreateMessage(ctx, changed); err != nil || changed.ID == m1.ID {
		t.Fatalf("the message form sent with another text: %v (id %d), want another message", err, changed.ID)
	}
	if again := message("Twice"); !errors.Is(st.CreateMessage(ctx, again), store.ErrDone) || again.ID != changed.ID {
		t.Fatalf("the changed message form sent twice: id %d, want done already, as %d", again.ID, changed.ID)
	}
	if n := count("messages"); n != 4 { // the fixture's, the look-alike, and the form's two
		t.Fatalf("%d messages, want 4", n)
	}
}
