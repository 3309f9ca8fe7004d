package web_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"rassylka/app/model"
)

// objects are one owner's client, message and mailing.
type objects struct {
	client  *model.Client
	message *model.Message
	mailing *model.Mailing
}

var fixtureSeq int

// makeObjects creates a client, a message and a mailing of owner directly
// in the store. Each call makes new ones, with marker texts that must
// never show up in another user's answers.
func makeObjects(t testing.TB, e *env, owner *model.User) objects {
	t.Helper()
	ctx := context.Background()
	fixtureSeq++
	n := strconv.Itoa(fixtureSeq)
	o := objects{
		client:  &model.Client{OwnerID: owner.ID, Email: "secret-client-" + n + "@owner.example", FullName: "Secret Client " + n, Comment: "secret comment " + n},
		message: &model.Message{OwnerID: owner.ID, Subject: "Secret subject " + n, Body: "Hello {{name}}, secret body"},
	}
	if err := e.store.CreateClient(ctx, o.client); err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateMessage(ctx, o.message); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Minute)
	o.mailing = &model.Mailing{OwnerID: owner.ID, MessageID: o.message.ID, StartsAt: start, EndsAt: start.Add(48 * time.Hour),
		Repeat: model.RepeatOnce, Status: model.StatusCreated, NextRunAt: &start}
	if err := e.store.CreateMailing(ctx, o.mailing, []int64{o.client.ID}); err != nil {
		t.Fatal(err)
	}
	return o
}

func id(n int64) string { return strconv.FormatInt(n, 10) }

// signedInWithObjects is a new env with Ann signed in (c) and her client,
// message and mailing.
func signedInWithObjects(t testing.TB) (e *env, c *client, ann *model.User, o objects) {
	t.Helper()
	e = newEnv(t)
	c = signedIn(t, e, "ann@example.com", model.RoleUser)
	ann, err := e.store.UserByEmail(context.Background(), "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	return e, c, ann, makeObjects(t, e, ann)
}

// insertRun writes a run as given (a run the worker would have made) and
// returns it with its id.
func (e *env) insertRun(t testing.TB, r *model.Run) *model.Run {
	t.Helper()
	if _, err := e.db.NewInsert().Model(r).Returning("*").Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r
}

// userID is the id of the user with that email.
func userID(t testing.TB, e *env, email string) int64 {
	t.Helper()
	u, err := e.store.UserByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}
