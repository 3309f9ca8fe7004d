package web

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"rassylka/app/auth"
	"rassylka/app/model"
	"rassylka/app/store"
	"rassylka/views/component"
)

const perPage = 50

// listScope is whose objects a list shows: one's own, or for a manager who
// asks with ?scope=all, everyone's (?owner= narrows it to one user).
func listScope(c *fiber.Ctx) (store.Scope, bool) {
	u := auth.CurrentUser(c)
	if u.IsManager() && c.Query("scope") == "all" {
		owner, _ := strconv.ParseInt(c.Query("owner"), 10, 64)
		return store.Everyone(owner), true
	}
	return store.Own(u.ID), false
}

// ownerFilter is the address of the user a manager's list of everyone's
// objects is narrowed to (?owner=), or "" when it is not narrowed. A user
// that does not exist is not found, as their objects' pages would be.
func (s *Server) ownerFilter(c *fiber.Ctx, sc store.Scope, all bool) (string, error) {
	if !all || sc.Owner == 0 {
		return "", nil
	}
	owner, err := s.store.UserByID(c.UserContext(), sc.Owner)
	if errors.Is(err, store.ErrNotFound) {
		return "", fiber.ErrNotFound
	}
	if err != nil {
		return "", err
	}
	return owner.Email, nil
}

// readScope is whose object a page may show: managers read everyone's.
func readScope(u *model.User) store.Scope {
	if u.IsManager() {
		return store.Everyone(0)
	}
	return store.Own(u.ID)
}

// pageNumber reads ?page=.
func pageNumber(c *fiber.Ctx) store.Page { return pageNumberOf(c, "page", perPage) }

// pageNumberOf reads the page number of param, pages of size.
func pageNumberOf(c *fiber.Ctx, param string, size int) store.Page {
	n, _ := strconv.Atoi(c.Query(param))
	return store.NewPage(n, size)
}

// pathID reads the :id parameter; a malformed id is simply not found.
func pathID(c *fiber.Ctx) (int64, error) {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, fiber.ErrNotFound
	}
	return id, nil
}

// own loads the object at the path's id that the viewer owns (byID is
// the store's reader of one): anyone else's answers 404, a manager's
// included (managers read others' objects but never change them).
func own[T any](c *fiber.Ctx, byID func(context.Context, store.Scope, int64) (T, error)) (T, error) {
	var none T
	id, err := pathID(c)
	if err != nil {
		return none, err
	}
	r, err := byID(c.UserContext(), store.Own(auth.UserID(c)), id)
	if errors.Is(err, store.ErrNotFound) {
		return none, fiber.ErrNotFound
	}
	return r, err
}

// pager builds the pager of a list at path with the request's query,
// changing only the page.
func pager(c *fiber.Ctx, path string, p store.Page, noun, target string) component.Pager {
	return pagerOf(c, path, "page", p, noun, target)
}

// pagerOf is pager for a list paged by the query parameter param (a page
// with two lists pages each by its own).
func pagerOf(c *fiber.Ctx, path, param string, p store.Page, noun, target string) component.Pager {
	link := func(n int) string {
		value := ""
		if n > 1 {
			value = strconv.Itoa(n)
		}
		return linkWith(c, path, param, value)
	}
	if p.Total == 1 {
		noun = strings.TrimSuffix(noun, "s") // every list's noun is a regular plural
	}
	pg := component.Pager{Page: p.Number, Pages: p.Pages(), Total: p.Total, Noun: noun, Target: target}
	if p.Number > 1 {
		pg.PrevURL = link(min(p.Number-1, p.Pages()))
	}
	if p.Number < p.Pages() {
		pg.NextURL = link(p.Number + 1)
	}
	if p.Number > 2 {
		pg.FirstURL = link(1)
	}
	if p.Number < p.Pages()-1 {
		pg.LastURL = link(p.Pages())
	}
	return pg
}

// listURL is the list at path as this request shows it: its search,
// filter, scope and page.
func listURL(c *fiber.Ctx, path string) string { return linkWith(c, path, "", "") }

// linkWith is path with the request's query, param set to value (left out
// when empty) and the parameters drop left out.
func linkWith(c *fiber.Ctx, path, param, value string, drop ...string) string {
	q := url.Values{}
	for k, v := range c.Queries() {
		if k != param && !slices.Contains(drop, k) {
			q.Set(k, v)
		}
	}
	if value != "" {
		q.Set(param, value)
	}
	if enc := q.Encode(); enc != "" {
		return path + "?" + enc
	}
	return path
}

func urlQuery(s string) string { return url.QueryEscape(s) }

// filterChoice is one choice of a list's filter.
type filterChoice struct{ Value, Label string }

// chosenFilter reads a list's filter (param; a value not among choices is
// none, "") and returns it with the filter's links, which keep the list's
// other parameters and go back to its first page.
func chosenFilter(c *fiber.Ctx, path, param string, choices []filterChoice) (string, []component.Filter) {
	value := c.Query(param)
	if !slices.ContainsFunc(choices, func(f filterChoice) bool { return f.Value == value }) {
		value = ""
	}
	links := make([]component.Filter, 0, len(choices))
	for _, f := range choices {
		links = append(links, component.Filter{Param: param, Value: f.Value, Label: f.Label,
			URL: linkWith(c, path, param, f.Value, "page"), Active: f.Value == value})
	}
	return value, links
}
