package web_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"rassylka/app/model"
)

// A NUL byte, which PostgreSQL cannot store, is refused beside its field,
// and in a search it finds what the rest of the search finds, instead of
// failing the request.
func TestNulInInput(t *testing.T) {
	e := newEnv(t)
	c := signedIn(t, e, "ann@example.com", model.RoleUser)
	ann, err := e.store.UserByEmail(context.Background(), "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	makeObjects(t, e, ann)
	for _, tc := range []struct {
		path, field string
		form        url.Values
	}{
		{"/clients", "full_name", url.Values{"email": {"x@example.com"}, "full_name": {"Ann\x00"}}},
		{"/clients", "comment", url.Values{"email": {"y@example.com"}, "comment": {"a\x00b"}}},
		{"/messages", "subject", url.Values{"subject": {"Hi\x00"}, "body": {"Body"}}},
		{"/messages", "body", url.Values{"subject": {"Hi"}, "body": {"Bo\x00dy"}}},
	} {
		resp, body := c.post(t, tc.path, tc.form)
		wantStatus(t, resp, body, http.StatusUnprocessableEntity)
		if fieldError(t, body, tc.field) == "" {
			t.Errorf("%s: no error beside %s", tc.path, tc.field)
		}
	}
	for _, p := range []string{"/clients?q=", "/messages?q=", "/mailings/picker?picker_q=", "/mailings/picker/ids?q="} {
		resp, body := c.get(t, p+"a%00")
		wantStatus(t, resp, body, http.StatusOK)
	}
}
