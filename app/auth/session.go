package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/session"
	"github.com/redis/go-redis/v9"

	"rassylka/app/model"
	"rassylka/app/store"
)

// Session lifetimes: a session unused for IdleTimeout ends, and any session
// ends AbsoluteTimeout after sign-in however much it is used.
const (
	IdleTimeout     = 7 * 24 * time.Hour
	AbsoluteTimeout = 30 * 24 * time.Hour
	// RoundTripTimeout is how long a visitor's session (an OAuth round
	// trip, before sign-in) is kept.
	RoundTripTimeout = 30 * time.Minute

	// CookieName is the session cookie's name (__Host- prefixed on https).
	CookieName = "rassylka_session"
	// MarkCookieName holds a mark of the browser's session (a hash of its
	// id), which its signed-in pages carry too. It grants nothing and
	// scripts may read it: a page brought back by "Back" whose mark is no
	// longer the cookie's (the session ended, however, or another began)
	// reloads from the server instead of showing what the browser kept.
	MarkCookieName = "rassylka_signed_in"

	keyUserID = "uid"
	keyAuthAt = "auth_at"

	localUser   = "auth.user"
	localMark   = "auth.mark"
	localEnded  = "auth.ended"
	userSetsKey = "user-sessions:"
	// endedKeyPrefix keeps why a session was ended by EndAllBecause.
	endedKeyPrefix = "session-ended:"
)

// Users is what sessions need of the store.
type Users interface {
	UserByID(ctx context.Context, id int64) (*model.User, error)
}

// Sessions keeps signed-in users in Redis-backed Fiber sessions and keeps an
// index of each user's sessions so that all of them can be ended at once.
type Sessions struct {
	store  *session.Store
	rdb    redis.UniversalClient
	users  Users
	log    *slog.Logger
	cookie string
	mark   string // MarkCookieName, __Host- prefixed on https
	secure bool

	beforeSave func() // tests: what happens between reading a session and saving it
}

// NewSessions builds the session manager. secure marks the cookie Secure
// (BASE_URL is https) and names it __Host-rassylka_session.
func NewSessions(rdb redis.UniversalClient, users Users, secure bool, log *slog.Logger) *Sessions {
	// __Host- on https: a session planted in a browser would work in its
	// planter's name (see hostCookie).
	cookie := HostCookie(CookieName, secure)
	st := session.New(session.Config{
		Storage:        redisStorage{rdb: rdb},
		Expiration:     IdleTimeout,
		KeyLookup:      "cookie:" + cookie,
		CookieHTTPOnly: true,
		CookieSameSite: fiber.CookieSameSiteLaxMode,
		CookieSecure:   secure,
		CookiePath:     "/",
		KeyGenerator:   func() string { return RandomString(32) },
	})
	return &Sessions{store: st, rdb: rdb, users: users, log: log, cookie: cookie,
		mark: HostCookie(MarkCookieName, secure), secure: secure}
}

// Load is middleware that puts the signed-in user, if any, on the request.
// A session whose user is gone or blocked, or that outlived its absolute
// lifetime, is ended here, on its next request.
func (s *Sessions) Load(c *fiber.Ctx) error {
	if c.Cookies(s.cookie) == "" {
		s.clearMark(c)
		return c.Next()
	}
	sess, err := s.store.Get(c)
	if err != nil {
		return fmt.Errorf("load session: %w", err)
	}
	uid, _ := sess.Get(keyUserID).(int64)
	if uid == 0 {
		s.clearMark(c) // ended elsewhere, or gone idle
		// Ended elsewhere (EndAllBecause): the reason stays for the
		// browser's next request, so that the sign-in page can say it.
		if reason, err := s.rdb.Get(c.UserContext(), endedKeyPrefix+c.Cookies(s.cookie)).Result(); err == nil {
			c.Locals(localEnded, reason)
		}
		return c.Next()
	}
	authAt, _ := sess.Get(keyAuthAt).(int64)
	if time.Since(time.Unix(authAt, 0)) > AbsoluteTimeout {
		c.Locals(localEnded, "expired")
		return s.end(c, sess, uid)
	}
	u, err := s.users.UserByID(c.UserContext(), uid)
	if errors.Is(err, store.ErrNotFound) {
		c.Locals(localEnded, "gone")
		return s.end(c, sess, uid)
	}
	if err != nil {
		return fmt.Errorf("session user: %w", err)
	}
	if u.Blocked() {
		c.Locals(localEnded, "blocked")
		return s.end(c, sess, uid)
	}
	c.Locals(localUser, u)
	// Use extends the idle lifetime of the browser's cookies too (Fiber
	// sets the session's only when it saves it, at sign-in: an active
	// user was signed out IdleTimeout after signing in).
	s.setCookies(c, sess.ID())
	// Use extends the idle lifetime. EXPIRE only touches a key that still
	// exists, so a session ended meanwhile (sign-out elsewhere, a reset)
	// does not come back, as a full save of the session would make it.
	if err := s.rdb.Expire(c.UserContext(), sessionKeyPrefix+sess.ID(), IdleTimeout).Err(); err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return c.Next()
}

func (s *Sessions) end(c *fiber.Ctx, sess *session.Session, uid int64) error {
	id := sess.ID()
	if err := sess.Destroy(); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	s.clearMark(c)
	if err := s.rdb.SRem(c.UserContext(), userSetsKey+strconv.FormatInt(uid, 10), id).Err(); err != nil {
		s.log.WarnContext(c.UserContext(), "unindex ended session", "error", err.Error())
	}
	return c.Next()
}

// SignIn starts a new session for u: a fresh id (the old one is dropped, so
// a planted session id is worthless), registered in the user's index.
func (s *Sessions) SignIn(c *fiber.Ctx, u *model.User) error { return s.signIn(c, u, false) }

// SignInByPassword is SignIn for u signing in with the password of u as
// read to check it. A password changed meanwhile (a reset, a change on the
// account page) ended the account's sessions, perhaps before this one was
// in its index: then no session starts (ErrBadCredentials: the password
// given is no longer the account's; so too when it was changed to the
// same one, with a new salt).
func (s *Sessions) SignInByPassword(c *fiber.Ctx, u *model.User) error { return s.signIn(c, u, true) }

func (s *Sessions) signIn(c *fiber.Ctx, u *model.User, byPassword bool) error {
	sess, err := s.store.Get(c)
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	if err := sess.Regenerate(); err != nil {
		return fmt.Errorf("sign in: rotate session: %w", err)
	}
	now := time.Now().Unix()
	sess.Set(keyUserID, u.ID)
	sess.Set(keyAuthAt, now)
	id := sess.ID()
	if err := sess.Save(); err != nil {
		return fmt.Errorf("sign in: save session: %w", err)
	}
	key := userSetsKey + strconv.FormatInt(u.ID, 10)
	pipe := s.rdb.TxPipeline()
	pipe.SAdd(c.UserContext(), key, id)
	pipe.Expire(c.UserContext(), key, AbsoluteTimeout)
	if _, err := pipe.Exec(c.UserContext()); err != nil {
		return fmt.Errorf("sign in: index session: %w", err)
	}
	if byPassword {
		// Read once the session is in the index: a change committed
		// before is seen here, and one committed after ends the session
		// with the others.
		cur, err := s.users.UserByID(c.UserContext(), u.ID)
		if err != nil {
			return fmt.Errorf("sign in: %w", err)
		}
		if cur.PasswordHash == nil || u.PasswordHash == nil || *cur.PasswordHash != *u.PasswordHash {
			pipe := s.rdb.TxPipeline()
			pipe.Del(c.UserContext(), sessionKeyPrefix+id)
			pipe.SRem(c.UserContext(), key, id)
			if _, err := pipe.Exec(c.UserContext()); err != nil {
				return fmt.Errorf("sign in: end session: %w", err)
			}
			return ErrBadCredentials
		}
	}
	c.Locals(localUser, u)
	s.setCookies(c, id)
	RenewCSRF(c)
	return nil
}

// SignOut ends the request's session.
func (s *Sessions) SignOut(c *fiber.Ctx) error {
	s.clearMark(c)
	if c.Cookies(s.cookie) == "" {
		return nil
	}
	sess, err := s.store.Get(c)
	if err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	uid, _ := sess.Get(keyUserID).(int64)
	id := sess.ID()
	if err := sess.Destroy(); err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	if uid != 0 {
		if err := s.rdb.SRem(c.UserContext(), userSetsKey+strconv.FormatInt(uid, 10), id).Err(); err != nil {
			s.log.WarnContext(c.UserContext(), "unindex session", "error", err.Error())
		}
	}
	c.Locals(localUser, nil)
	RenewCSRF(c)
	return nil
}

// setCookies gives the browser the session's cookie and its mark, both
// for IdleTimeout from now; the request's pages carry the mark.
func (s *Sessions) setCookies(c *fiber.Ctx, id string) {
	until := time.Now().Add(IdleTimeout)
	c.Cookie(&fiber.Cookie{Name: s.cookie, Value: id, Path: "/", MaxAge: int(IdleTimeout.Seconds()), Expires: until,
		Secure: s.secure, HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode})
	mark := markOf(id)
	c.Cookie(&fiber.Cookie{Name: s.mark, Value: mark, Path: "/", MaxAge: int(IdleTimeout.Seconds()), Expires: until,
		Secure: s.secure, SameSite: fiber.CookieSameSiteLaxMode})
	c.Locals(localMark, mark)
}

// clearMark takes the mark away from a browser with no session (signed
// out, or its session ended elsewhere or gone idle), if it has one.
func (s *Sessions) clearMark(c *fiber.Ctx) {
	c.Locals(localMark, "")
	if c.Cookies(s.mark) == "" {
		return
	}
	c.Cookie(&fiber.Cookie{Name: s.mark, Value: "", Path: "/", Expires: time.Unix(0, 0), MaxAge: -1,
		Secure: s.secure, SameSite: fiber.CookieSameSiteLaxMode})
}

// markOf is the mark of a session: a hash of its id, which tells nothing
// of the id.
func markOf(id string) string {
	sum := sha256.Sum256([]byte("rassylka-mark:" + id))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// SignInMark is the mark of the browser's sign-in that the request's page
// carries ("": signed out).
func SignInMark(c *fiber.Ctx) string {
	m, _ := c.Locals(localMark).(string)
	return m
}

// EndAll ends every session of the user, wherever it was opened.
func (s *Sessions) EndAll(ctx context.Context, userID int64) error {
	return s.EndAllBecause(ctx, userID, "")
}

// EndAllBecause ends every session of the user and, when reason is not
// "", leaves it for each session's next request (EndedBecause), as Load
// does for a session it ends itself: a user blocked while signed in is
// told so on the sign-in page, not just sent there.
func (s *Sessions) EndAllBecause(ctx context.Context, userID int64, reason string) error {
	key := userSetsKey + strconv.FormatInt(userID, 10)
	ids, err := s.rdb.SMembers(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("end sessions: %w", err)
	}
	keys := []string{key}
	pipe := s.rdb.TxPipeline()
	for _, id := range ids {
		keys = append(keys, sessionKeyPrefix+id)
		if reason != "" {
			pipe.Set(ctx, endedKeyPrefix+id, reason, IdleTimeout)
		}
	}
	pipe.Del(ctx, keys...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("end sessions: %w", err)
	}
	return nil
}

// Value reads a value kept in the request's session (OAuth state, …).
func (s *Sessions) Value(c *fiber.Ctx, key string) (string, error) {
	sess, err := s.store.Get(c)
	if err != nil {
		return "", fmt.Errorf("session value: %w", err)
	}
	v, _ := sess.Get(key).(string)
	return v, nil
}

// SetValues keeps values in the request's session (an empty value deletes).
// A visitor's session is kept RoundTripTimeout only: it holds no more than
// an OAuth round trip, and anyone may have one made. A session there is
// none of yet is not made just to delete from it.
func (s *Sessions) SetValues(c *fiber.Ctx, kv map[string]string) error {
	sess, err := s.store.Get(c)
	if err != nil {
		return fmt.Errorf("session values: %w", err)
	}
	changed := false
	for k, v := range kv {
		if v == "" {
			sess.Delete(k)
		} else {
			sess.Set(k, v)
			changed = true
		}
	}
	if sess.Fresh() && !changed {
		return nil
	}
	uid, _ := sess.Get(keyUserID).(int64)
	if uid == 0 {
		sess.SetExpiry(RoundTripTimeout)
	}
	if s.beforeSave != nil {
		s.beforeSave()
	}
	id := sess.ID()
	if err := sess.Save(); err != nil {
		return fmt.Errorf("session values: %w", err)
	}
	if uid == 0 {
		return nil
	}
	// The save writes the whole session again: one ended since it was read
	// (EndAll, on a password change or reset elsewhere) would come back,
	// out of the user's index and so out of reach of the next EndAll.
	// Its id left the index when it ended, which the save does not undo:
	// ended, it is ended again.
	ctx := c.UserContext()
	member, err := s.rdb.SIsMember(ctx, userSetsKey+strconv.FormatInt(uid, 10), id).Result()
	if err != nil {
		return fmt.Errorf("session values: %w", err)
	}
	if !member {
		if err := s.rdb.Del(ctx, sessionKeyPrefix+id).Err(); err != nil {
			return fmt.Errorf("session values: end a session ended meanwhile: %w", err)
		}
		c.Locals(localUser, nil)
	}
	return nil
}

// CurrentUser is the signed-in user of the request, or nil.
func CurrentUser(c *fiber.Ctx) *model.User {
	u, _ := c.Locals(localUser).(*model.User)
	return u
}

// UserID is the signed-in user's id; use it only behind RequireUser.
func UserID(c *fiber.Ctx) int64 {
	if u := CurrentUser(c); u != nil {
		return u.ID
	}
	return 0
}

// EndedBecause says why Load ended the request's session ("blocked",
// "expired", "gone"), or "".
func EndedBecause(c *fiber.Ctx) string {
	v, _ := c.Locals(localEnded).(string)
	return v
}

// RequireUser sends anonymous visitors to the sign-in page, with the page
// they wanted as ?next= (htmx requests get HX-Redirect). A form posted
// after the session ended names the page it was posted from (its action is
// no page to come back to: the browser GETs next), or the home page.
func RequireUser(c *fiber.Ctx) error {
	if CurrentUser(c) != nil {
		return c.Next()
	}
	next := c.OriginalURL()
	if m := c.Method(); m != fiber.MethodGet && m != fiber.MethodHead {
		next = "/"
		if u, err := url.Parse(c.Get(fiber.HeaderReferer)); err == nil && u.Host != "" && u.Host == string(c.Request().Host()) {
			next = u.RequestURI()
		}
	}
	if c.Get("HX-Request") == "true" {
		if cur := c.Get("HX-Current-URL"); cur != "" {
			if u, err := url.Parse(cur); err == nil {
				next = u.RequestURI()
			}
		}
	}
	target := "/login?next=" + url.QueryEscape(SafeNext(next))
	if reason := EndedBecause(c); reason != "" {
		target += "&ended=" + reason
	}
	if c.Get("HX-Request") == "true" {
		c.Set("HX-Redirect", target)
		return c.SendStatus(fiber.StatusUnauthorized)
	}
	return c.Redirect(target, fiber.StatusSeeOther)
}

// RequireManager lets only managers through (after RequireUser); others
// get 403.
func RequireManager(c *fiber.Ctx) error {
	if u := CurrentUser(c); u != nil && u.IsManager() {
		return c.Next()
	}
	return fiber.ErrForbidden
}

// SafeNext returns next when it is a path on this site, "/" otherwise, so
// that ?next= cannot send a person to another site.
func SafeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}
