package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/uptrace/bun/dialect/pgdialect"

	"rassylka/app/model"
	"rassylka/app/store"
	"rassylka/app/testkit"
)

// A page number past the end of any list shows its last page: the last
// page's number and its rows (a link kept from a longer list, or a
// narrower search, shows the end rather than nothing).
func TestPagePastTheEndShowsTheLastPage(t *testing.T) {
	db := testkit.DB(t)
	st := store.New(db)
	ctx := context.Background()
	f := newFixture(t, db, "owner@example.com") // one user, client, message and mailing
	var clients []int64
	for i := 0; i < 4; i++ {
		c := &model.Client{OwnerID: f.owner.ID, Email: fmt.Sprintf("c%d@example.com", i)}
		mustInsert(t, db, c)
		clients = append(clients, c.ID)
		mustInsert(t, db, &model.Message{OwnerID: f.owner.ID, Subject: fmt.Sprintf("S%d", i), Body: "b"})
		mustInsert(t, db, &model.Mailing{OwnerID: f.owner.ID, MessageID: f.message.ID, StartsAt: f.mailing.StartsAt, EndsAt: f.mailing.EndsAt,
			Repeat: model.RepeatOnce, Status: model.StatusCreated})
		mustInsert(t, db, &model.User{Email: fmt.Sprintf("u%d@example.com", i), Role: model.RoleUser, TimeZone: "UTC"})
		mustInsert(t, db, &model.Attempt{RunID: f.run.ID, MailingID: f.mailing.ID, ClientID: &c.ID, Email: c.Email, Status: model.AttemptSuccess})
	}
	mustInsert(t, db, &model.Attempt{RunID: f.run.ID, MailingID: f.mailing.ID, ClientID: &f.client.ID, Email: f.client.Email, Status: model.AttemptSuccess})
	if _, err := db.ExecContext(ctx, `INSERT INTO mailing_recipients (mailing_id, client_id) SELECT ?, unnest(?::bigint[]) ON CONFLICT DO NOTHING`,
		f.mailing.ID, pgdialect.Array(append(clients, f.client.ID))); err != nil {
		t.Fatal(err)
	}
	past := store.NewPage(99, 2)
	own := store.Own(f.owner.ID)
	lists := map[string]func() (int, store.Page, error){ // 5 rows each: the last page is the third, with one row
		"clients": func() (int, store.Page, error) {
			rows, p, err := st.ListClients(ctx, own, "", "", past)
			return len(rows), p, err
		},
		"messages": func() (int, store.Page, error) {
			rows, p, err := st.ListMessages(ctx, own, "", past)
			return len(rows), p, err
		},
		"mailings": func() (int, store.Page, error) {
			rows, p, err := st.ListMailings(ctx, own, "", "", past)
			return len(rows), p, err
		},
		"users": func() (int, store.Page, error) { rows, p, err := st.ListUsers(ctx, "", past); return len(rows), p, err },
		"recipients": func() (int, store.Page, error) {
			rows, p, err := st.RecipientsOfMailing(ctx, f.mailing.ID, past)
			return len(rows), p, err
		},
		"attempts": func() (int, store.Page, error) {
			rows, p, err := st.AttemptsOfMailing(ctx, f.mailing.ID, "", past)
			return len(rows), p, err
		},
	}
	for name, list := range lists {
		n, p, err := list()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p.Total != 5 || p.Number != 3 || n != 1 {
			t.Errorf("%s, page 99 (2 a page): page %d of %d rows, %d shown; want page 3 of 5 rows, 1 shown", name, p.Number, p.Total, n)
		}
	}
}
