package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/markbates/goth"

	"rassylka/app/model"
	"rassylka/app/store"
	"rassylka/app/task"
	"rassylka/views/email"
)

// Token lifetimes.
const (
	ConfirmTokenTTL = 48 * time.Hour
	ResetTokenTTL   = time.Hour
	RevertTokenTTL  = 7 * 24 * time.Hour // a move's, mailed to the old address
)

// Errors of the account flows; handlers turn them into pages.
var (
	ErrBadCredentials  = errors.New("wrong email or password")
	ErrUnconfirmed     = errors.New("email not confirmed")
	ErrBlocked         = errors.New("account blocked")
	ErrTokenInvalid    = errors.New("token unknown")
	ErrTokenExpired    = errors.New("token expired")
	ErrTokenUsed       = errors.New("token already used")
	ErrNoVerifiedEmail = errors.New("provider gave no verified email")
	ErrIdentityTaken   = errors.New("provider account linked to another user")
	// ErrPasswordAccount: a provider's verified address is that of a
	// confirmed account with a password, which a provider's sign-in does
	// not join (see OAuthSignIn).
	ErrPasswordAccount = errors.New("the address's account signs in with a password")
)

// Enqueuer puts tasks on the queue; *asynq.Client is the real one.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Accounts runs registration, confirmation, sign-in checks, password reset
// and OAuth sign-in. Mail goes through the queue, enqueued after commit.
type Accounts struct {
	Store   *store.Store
	Queue   Enqueuer
	BaseURL string
	Log     *slog.Logger
	// MailLimit bounds the mails sent to one address (nil: no bound).
	MailLimit *Limiter
}

// dummyHash is checked when an email is unknown so that a wrong email
// takes as long as a wrong password.
var dummyHash, _ = HashPassword("rassylka-timing-equalizer")

// Register creates an unconfirmed account and mails its confirmation link.
// For an address that already has an account it mails the owner instead and
// answers the same, so the form does not reveal who is registered.
func (a *Accounts) Register(ctx context.Context, emailAddr, fullName, password, timeZone string) error {
	// Hash first, whatever happens next, so that the answer takes as long
	// for a registered address as for a new one.
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	existing, err := a.Store.UserByEmail(ctx, emailAddr)
	// Whoever registers an unconfirmed address again with the password it
	// was registered with is the first registrant again (a second click,
	// a retry after the mail was slow): the address is not contested. The
	// check runs for every address, so that it takes as long for all.
	stored := dummyHash
	if err == nil && existing.EmailConfirmedAt == nil && existing.PasswordHash != nil {
		stored = *existing.PasswordHash
	}
	samePassword := CheckPassword(stored, password) == nil && stored != dummyHash
	switch {
	case err == nil && samePassword:
		// A new confirmation link, the earlier ones still working.
		link, err := a.newLink(ctx, existing.ID, model.TokenConfirmEmail, "/confirm/")
		if err != nil {
			return err
		}
		subject, text := email.Confirm(greeted(existing), link)
		return a.mail(ctx, existing, subject, text)
	case err == nil:
		// Nothing changes unless the mail can go: a dropped mail must not
		// leave the owner's earlier link dead.
		if !a.mayMail(ctx, existing) {
			return nil
		}
		link := ""
		if existing.EmailConfirmedAt == nil {
			// Nobody has proved to own this address yet. Whoever owns the
			// inbox chooses the password, with a link mailed there (which
			// confirms the address too): neither the password of whoever
			// registered first nor that of whoever registers now is kept by
			// the owner's click. The stored password goes, and earlier
			// confirmation links stop working: they would confirm it. So
			// does the name, which is no more the owner's than the
			// password: the account keeps it no more than the mail greets by it.
			//
			// The account is locked first, as a confirmation locks it: a
			// confirmation under way is waited for, and one made meanwhile
			// (the owner's click, as this request ran) keeps the account
			// as its owner confirmed it.
			err := a.Store.InTx(ctx, func(tx *store.Store) error {
				locked, err := tx.LockUser(ctx, existing.ID)
				if err != nil || locked.EmailConfirmedAt != nil {
					existing = locked
					return err
				}
				if err := tx.RevokeTokens(ctx, existing.ID, model.TokenConfirmEmail); err != nil {
					return err
				}
				if err := tx.ResetUnconfirmed(ctx, existing.ID, "", existing.TimeZone); err != nil {
					return err
				}
				link, err = a.newLinkIn(ctx, tx, &model.Token{UserID: existing.ID, Purpose: model.TokenResetPassword}, "/password/reset/")
				return err
			})
			if err != nil {
				return fmt.Errorf("register again: %w", err)
			}
		}
		subject, text := email.AlreadyRegistered(greeted(existing), link, a.BaseURL, existing.Blocked())
		return a.enqueueMail(ctx, existing, subject, text)
	case !errors.Is(err, store.ErrNotFound):
		return err
	}

	// An address an account moved away from within the week is kept for
	// it (its link moves the account back): registering it makes nothing,
	// with the same answer. Whoever moved the account away would otherwise
	// register it, have a mail scanner confirm it, and keep the owner out.
	if kept, err := a.Store.AddressKept(ctx, emailAddr); err != nil {
		return err
	} else if kept {
		// Its inbox is told why, and nothing else changes.
		if !a.mayMailTo(ctx, emailAddr, "to", emailAddr) {
			return nil
		}
		subject, text := email.AddressKept()
		return a.enqueueMailTo(ctx, emailAddr, "", subject, text)
	}
	u := &model.User{Email: emailAddr, FullName: fullName, PasswordHash: &hash, TimeZone: timeZone}
	var link string
	err = a.Store.InTx(ctx, func(tx *store.Store) error {
		if err := tx.CreateUser(ctx, u); err != nil {
			return err
		}
		var err error
		link, err = a.newLinkIn(ctx, tx, &model.Token{UserID: u.ID, Purpose: model.TokenConfirmEmail}, "/confirm/")
		return err
	})
	if errors.Is(err, store.ErrConflict) {
		// Registered a moment ago by a concurrent request: same answer.
		return nil
	}
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	subject, text := email.Confirm(greeted(u), link)
	return a.mail(ctx, u, subject, text)
}

// ResendConfirmation mails a new confirmation link to an unconfirmed
// account of emailAddr, and a confirmed one where to sign in; an address
// with no account gets nothing.
func (a *Accounts) ResendConfirmation(ctx context.Context, emailAddr string) error {
	u, err := a.Store.UserByEmail(ctx, emailAddr)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if u.EmailConfirmedAt != nil {
		// Confirmed since the link was asked for (a reset link or a
		// provider confirms too): the inbox learns where to sign in, as
		// the answer promised a mail.
		subject, text := email.AlreadyConfirmed(greeted(u), a.BaseURL, u.Blocked())
		return a.mail(ctx, u, subject, text)
	}
	// An account without a password (registered again before anyone
	// confirmed it, see Register) gets one chosen by the inbox, with the
	// new link.
	if u.PasswordHash == nil {
		link, err := a.newLink(ctx, u.ID, model.TokenResetPassword, "/password/reset/")
		if err != nil {
			return err
		}
		subject, text := email.ChoosePassword(greeted(u), link)
		return a.mail(ctx, u, subject, text)
	}
	link, err := a.newLink(ctx, u.ID, model.TokenConfirmEmail, "/confirm/")
	if err != nil {
		return err
	}
	subject, text := email.Confirm(greeted(u), link)
	return a.mail(ctx, u, subject, text)
}

// Confirm uses a confirmation token and marks the address confirmed; the
// account's other confirmation links stop working.
func (a *Accounts) Confirm(ctx context.Context, token string) (*model.User, error) {
	var u *model.User
	err := a.Store.InTx(ctx, func(tx *store.Store) error {
		t, err := useToken(ctx, tx, model.TokenConfirmEmail, token)
		if err != nil {
			return err
		}
		if err := tx.ConfirmEmail(ctx, t.UserID); err != nil {
			return err
		}
		u, err = tx.UserByID(ctx, t.UserID)
		return err
	})
	if errors.Is(err, ErrTokenExpired) {
		// An expired link of an address confirmed since (a reset link or
		// a provider confirmed it) has nothing left to do: say it is
		// confirmed rather than offer a new link, which a confirmed
		// account is never mailed.
		if t, ferr := a.findToken(ctx, model.TokenConfirmEmail, token); errors.Is(ferr, ErrTokenExpired) {
			if owner, uerr := a.Store.UserByID(ctx, t.UserID); uerr == nil && owner.EmailConfirmedAt != nil {
				return owner, nil
			}
		}
	}
	return u, err
}

// SetReplyTo sets where the user's clients reply. The account's own
// address and none are set at once; another address waits (pending)
// until its inbox confirms it with the link this mails it, while replies
// go where they went. Asked for again while it waits, nothing changes,
// unless its link can no longer be used (expired): then a new one is
// mailed. Given up for another, its link stops working. mailed reports
// whether a link was mailed (within MailLimit).
func (a *Accounts) SetReplyTo(ctx context.Context, userID int64, addr string) (pending, mailed bool, err error) {
	var link string
	var u *model.User
	err = a.Store.InTx(ctx, func(tx *store.Store) error {
		// The row first, as every change of a user's tokens and row
		// takes it: two saves at once then decide one after the other.
		var err error
		if u, err = tx.LockUser(ctx, userID); err != nil {
			return err
		}
		switch {
		case addr != "" && addr == u.ReplyToPending:
			live, err := tx.LiveToken(ctx, userID, model.TokenConfirmReplyTo)
			if pending = live != nil; err != nil || pending {
				return err
			}
		case addr == u.ReplyTo && u.ReplyToPending == "":
			return nil
		case addr == "" || addr == u.ReplyTo || strings.EqualFold(addr, u.Email) && u.EmailConfirmedAt != nil:
			if err := tx.RevokeTokens(ctx, userID, model.TokenConfirmReplyTo); err != nil {
				return err
			}
			return tx.SetReplyTo(ctx, userID, addr, "")
		}
		if err := tx.RevokeTokens(ctx, userID, model.TokenConfirmReplyTo); err != nil {
			return err
		}
		if err := tx.SetReplyTo(ctx, userID, u.ReplyTo, addr); err != nil {
			return err
		}
		link, err = a.newLinkIn(ctx, tx, &model.Token{UserID: userID, Purpose: model.TokenConfirmReplyTo, Address: addr}, "/account/reply-to/")
		return err
	})
	if err != nil || link == "" {
		return pending, false, err
	}
	// The mail names the account by its address alone: a name is the
	// account's own words, which would go from us to any address.
	if !a.mayMailTo(ctx, addr, "to", addr) {
		return true, false, nil
	}
	subject, text := email.ConfirmReplyTo(u.Email, link)
	return true, true, a.enqueueMailTo(ctx, addr, "", subject, text)
}

// MovePasswordAge is how old an account's password must be for the
// account to move to another address: a session taken over, which may set
// a password (on an account without) or change it, cannot move the
// account away before its owner is told of the change.
const MovePasswordAge = 24 * time.Hour

// MayMoveFrom is when u's password is old enough for a move (zero: u has
// none). A password set when the account was made counts from then.
func MayMoveFrom(u *model.User) time.Time {
	if u.PasswordHash == nil {
		return time.Time{}
	}
	set := u.CreatedAt
	if u.PasswordSetAt != nil {
		set = *u.PasswordSetAt
	}
	return set.Add(MovePasswordAge)
}

// Refusals of a move to another address, found under the user's lock
// (the handler checked before, on the user as the session loaded it).
var (
	// ErrAccountChanged: the password was reset or changed, or the
	// account blocked, since it was checked.
	ErrAccountChanged = errors.New("the account changed meanwhile")
	// ErrNoticeLimit: the account's address has had its notices for the
	// hour, so it could not be told of the move.
	ErrNoticeLimit = errors.New("too many notices to the account's address")
	// ErrMovedLately: the account moved within the week, and the address
	// it left can still move it back.
	ErrMovedLately = errors.New("the account moved lately")
	// ErrAddressKept: an account moved away from the address within the
	// week, and its link mailed there can still move it back: no other
	// account takes the address meanwhile.
	ErrAddressKept = errors.New("the address is kept for the account that left it")
)

// CheckOwnPassword checks the password of the signed-in user u, as a
// change of their sign-in asks for it (ErrBadCredentials: not it). An
// account without a password has none to check.
func CheckOwnPassword(u *model.User, password string) error {
	if u.PasswordHash == nil {
		return nil
	}
	err := CheckPassword(*u.PasswordHash, password)
	if errors.Is(err, ErrPasswordMismatch) {
		return ErrBadCredentials
	}
	return err
}

// RequestEmailChange asks to move the account to the address addr
// (canonical): a link that makes the move is mailed to it, and works while
// no other move is asked for since (a new request, or a cancelled one,
// ends it). An address that has an account of its own gets a mail saying
// so instead, and the account that asked is told nothing else: it learns
// no more of which addresses have accounts than a registration does.
// mailed reports whether a mail was queued (within MailLimit).
func (a *Accounts) RequestEmailChange(ctx context.Context, u *model.User, addr string) (mailed bool, err error) {
	// The new address must be mailed, and the account's told
	// (ErrNoticeLimit otherwise): a request either has no mail left for
	// changes nothing (the link mailed before keeps working). The new
	// address first: a request refused for it spends no notice.
	if !a.mayMailTo(ctx, addr, "to", addr) {
		return false, nil
	}
	if !a.mayNotify(ctx, u.Email, u.ID) {
		return false, ErrNoticeLimit
	}
	var link string
	err = a.Store.InTx(ctx, func(tx *store.Store) error {
		// Under the lock, as it is now: a reset, a change of password or a
		// block committed since the handler checked (they revoke the links
		// made before them) refuses it.
		now, err := tx.LockUser(ctx, u.ID)
		if err != nil {
			return err
		}
		if now.Blocked() || now.PasswordHash == nil || u.PasswordHash == nil || *now.PasswordHash != *u.PasswordHash ||
			time.Now().Before(MayMoveFrom(now)) {
			return ErrAccountChanged
		}
		// A week after a move, the address it left may move it back: a
		// second move meanwhile would take the account beyond its reach.
		if back, err := tx.LiveToken(ctx, u.ID, model.TokenRevertEmail); err != nil {
			return err
		} else if back != nil {
			return ErrMovedLately
		}
		if err := tx.RevokeTokens(ctx, u.ID, model.TokenChangeEmail); err != nil {
			return err
		}
		link, err = a.newLinkIn(ctx, tx, &model.Token{UserID: u.ID, Purpose: model.TokenChangeEmail, Address: addr}, "/account/email/")
		return err
	})
	if err != nil {
		return false, err
	}
	// The account's own address is told, with how to stop it: whoever
	// asked knew the password, but may not be its owner.
	subject, text := email.MoveAsked(greeted(u), addr, a.BaseURL)
	a.tell(ctx, u.ID, u.Email, greeted(u), subject, text)
	subject, text = email.ChangeEmail(u.Email, link)
	if _, err := a.Store.UserByEmail(ctx, addr); err == nil {
		subject, text = email.EmailTaken(a.BaseURL)
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, err
	} else if kept, err := a.Store.AddressKept(ctx, addr); err != nil {
		return false, err
	} else if kept {
		// Kept for the account that left it: its inbox gets no link that
		// another account could be moved in by.
		subject, text = email.AddressKept()
	}
	return true, a.enqueueMailTo(ctx, addr, "", subject, text)
}

// CancelEmailChange ends the link of a move asked for: the account keeps
// its address.
func (a *Accounts) CancelEmailChange(ctx context.Context, userID int64) error {
	return a.Store.RevokeTokens(ctx, userID, model.TokenChangeEmail)
}

// CheckAddressToken tells whether a link mailed to an address (of purpose
// TokenChangeEmail or TokenConfirmReplyTo) can still be used, without
// using it, and returns its account and the address (ErrBlocked: the
// account is blocked; ErrAddressTaken: a new sign-in address has an
// account of its own since).
func (a *Accounts) CheckAddressToken(ctx context.Context, purpose model.TokenPurpose, token string) (*model.User, string, error) {
	t, err := a.findToken(ctx, purpose, token)
	if err != nil {
		return nil, "", err
	}
	u, err := a.Store.UserByID(ctx, t.UserID)
	if err != nil {
		return nil, "", err
	}
	if u.Blocked() {
		return u, t.Address, ErrBlocked
	}
	if purpose == model.TokenChangeEmail {
		// Registered since the move was asked for: its button would fail.
		if other, err := a.Store.UserByEmail(ctx, t.Address); err == nil && other.ID != u.ID {
			return u, t.Address, ErrAddressTaken
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, "", err
		}
	}
	return u, t.Address, nil
}

// ErrAddressTaken: the address a link would move an account to has an
// account of its own (registered since the move was asked for).
var ErrAddressTaken = errors.New("the address has an account")

// ChangeEmail uses a new address's link: the account signs in with that
// address from now on, confirmed. The reset and confirmation links mailed
// to the old address stop working, and the old address is told. It
// returns the user as they are now and their old address.
func (a *Accounts) ChangeEmail(ctx context.Context, token string) (u *model.User, old string, err error) {
	var back string // the link that moves it back, mailed to the old address
	err = a.Store.InTx(ctx, func(tx *store.Store) error {
		t, user, err := useAddressToken(ctx, tx, model.TokenChangeEmail, token)
		if u = user; err != nil {
			return err
		}
		old = u.Email
		if kept, err := tx.AddressKept(ctx, t.Address); err != nil {
			return err
		} else if kept {
			return ErrAddressTaken
		}
		if err := tx.SetEmail(ctx, u.ID, t.Address); errors.Is(err, store.ErrConflict) {
			return ErrAddressTaken
		} else if err != nil {
			return err
		}
		if err := tx.RevokeTokens(ctx, u.ID, model.TokenResetPassword, model.TokenConfirmEmail); err != nil {
			return err
		}
		if back, err = a.newLinkIn(ctx, tx, &model.Token{UserID: u.ID, Purpose: model.TokenRevertEmail, Address: old}, "/account/email/revert/"); err != nil {
			return err
		}
		u, err = tx.UserByID(ctx, u.ID)
		return err
	})
	if err != nil {
		return u, old, err
	}
	// Always mailed (a move is made once a week at most): it carries the
	// only way back.
	subject, text := email.EmailChanged(greeted(u), u.Email, back)
	a.tell(ctx, u.ID, old, greeted(u), subject, text)
	return u, old, nil
}

// RevertEmail uses the link a move mailed to the old address: the account
// moves back to it, confirmed, with the new password given (whoever moved
// it knew the old one), every link mailed before stops working, and the
// sign-ins through providers under another address go (as a reset's do).
// An account registered with the old address since the move, never
// confirmed, is deleted (it holds nothing, and whoever moved the account
// could have made it to keep the owner out); a confirmed one refuses
// (ErrAddressTaken). It returns the user as they are now.
func (a *Accounts) RevertEmail(ctx context.Context, token, password string) (u *model.User, unlinked int, err error) {
	var left string // the address moved away from
	hash, err := HashPassword(password)
	if err != nil {
		return nil, 0, err
	}
	err = a.Store.InTx(ctx, func(tx *store.Store) error {
		t, user, err := useAddressToken(ctx, tx, model.TokenRevertEmail, token)
		if u = user; err != nil {
			return err
		}
		if other, err := tx.UserByEmail(ctx, t.Address); err == nil && other.ID != u.ID {
			if gone, err := tx.DeleteUnconfirmed(ctx, other.ID); err != nil {
				return err
			} else if !gone {
				return ErrAddressTaken
			}
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := tx.SetEmail(ctx, u.ID, t.Address); errors.Is(err, store.ErrConflict) {
			return ErrAddressTaken
		} else if err != nil {
			return err
		}
		if err := tx.SetPassword(ctx, u.ID, hash); err != nil {
			return err
		}
		if err := tx.RevokeTokens(ctx, u.ID, model.TokenChangeEmail, model.TokenResetPassword, model.TokenConfirmEmail, model.TokenConfirmReplyTo); err != nil {
			return err
		}
		// Where replies went may be whoever moved the account's doing.
		if err := tx.SetReplyTo(ctx, u.ID, "", ""); err != nil {
			return err
		}
		if unlinked, err = tx.DropIdentitiesOfOtherAddresses(ctx, u.ID); err != nil {
			return err
		}
		left = u.Email
		u, err = tx.UserByID(ctx, u.ID)
		return err
	})
	if err != nil {
		return u, unlinked, err
	}
	// The address moved away from is told (its owner, if the move was
	// theirs, finds themself signed out).
	subject, text := email.MovedBack(u.Email)
	a.notify(ctx, u.ID, left, "", subject, text)
	return u, unlinked, nil
}

// ConfirmReplyTo uses a reply-address link: the address it was mailed to
// becomes the user's reply address, if it is still the one waiting (a
// link of an address given up since confirms nothing). It returns the
// user and the address.
func (a *Accounts) ConfirmReplyTo(ctx context.Context, token string) (*model.User, string, error) {
	var u *model.User
	var addr string
	err := a.Store.InTx(ctx, func(tx *store.Store) error {
		t, user, err := useAddressToken(ctx, tx, model.TokenConfirmReplyTo, token)
		if u = user; err != nil {
			return err
		}
		ok, err := tx.ConfirmReplyTo(ctx, t.UserID, t.Address)
		if err != nil {
			return err
		}
		if !ok {
			return ErrTokenUsed
		}
		addr = t.Address
		return nil
	})
	return u, addr, err
}

// Authenticate checks an email and password. It answers ErrBadCredentials
// alike for an unknown email and a wrong password, and only then tells
// ErrUnconfirmed or ErrBlocked.
func (a *Accounts) Authenticate(ctx context.Context, emailAddr, password string) (*model.User, error) {
	u, err := a.Store.UserByEmail(ctx, emailAddr)
	if errors.Is(err, store.ErrNotFound) {
		_ = CheckPassword(dummyHash, password)
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, err
	}
	if u.PasswordHash == nil {
		_ = CheckPassword(dummyHash, password)
		return nil, ErrBadCredentials
	}
	if err := CheckPassword(*u.PasswordHash, password); err != nil {
		if errors.Is(err, ErrPasswordMismatch) {
			return nil, ErrBadCredentials
		}
		return nil, err
	}
	if u.Blocked() {
		return u, ErrBlocked
	}
	if u.EmailConfirmedAt == nil {
		return u, ErrUnconfirmed
	}
	return u, nil
}

// RequestReset mails a password-reset link when emailAddr has an account
// and does nothing, silently, otherwise.
func (a *Accounts) RequestReset(ctx context.Context, emailAddr string) error {
	u, err := a.Store.UserByEmail(ctx, emailAddr)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	link, err := a.newLink(ctx, u.ID, model.TokenResetPassword, "/password/reset/")
	if err != nil {
		return err
	}
	subject, text := email.Reset(greeted(u), link, u.Blocked())
	return a.mail(ctx, u, subject, text)
}

// CheckResetToken tells whether a reset token can still be used, without
// using it, and returns the address of its account (a new password must
// not be it).
func (a *Accounts) CheckResetToken(ctx context.Context, token string) (string, error) {
	t, err := a.findToken(ctx, model.TokenResetPassword, token)
	if err != nil {
		return "", err
	}
	u, err := a.Store.UserByID(ctx, t.UserID)
	if err != nil {
		return "", err
	}
	return u.Email, nil
}

// ResetPassword uses a reset token and sets the new password; the
// account's other reset links stop working. Opening the mailed link proves
// the address too, so it is marked confirmed.
//
// Whoever held the account may have linked an account of theirs at a
// provider, to come back through after the reset: the links a provider
// vouched for with another address than the account's go (unlinked says
// how many); those of the account's own address stay.
func (a *Accounts) ResetPassword(ctx context.Context, token, password string) (u *model.User, unlinked int, err error) {
	hash, err := HashPassword(password)
	if err != nil {
		return nil, 0, err
	}
	err = a.Store.InTx(ctx, func(tx *store.Store) error {
		t, err := useToken(ctx, tx, model.TokenResetPassword, token)
		if err != nil {
			return err
		}
		if err := tx.SetPassword(ctx, t.UserID, hash); err != nil {
			return err
		}
		// A move to another address asked for before ends, and a reply
		// address waiting for its inbox: whoever held the account may have
		// asked for them.
		if err := tx.RevokeTokens(ctx, t.UserID, model.TokenChangeEmail, model.TokenConfirmReplyTo); err != nil {
			return err
		}
		if err := tx.CancelReplyToPending(ctx, t.UserID); err != nil {
			return err
		}
		if err := tx.ConfirmEmail(ctx, t.UserID); err != nil {
			return err
		}
		if unlinked, err = tx.DropIdentitiesOfOtherAddresses(ctx, t.UserID); err != nil {
			return err
		}
		u, err = tx.UserByID(ctx, t.UserID)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	a.tellPasswordChanged(ctx, u, "set with a reset link")
	if u.Blocked() {
		return u, unlinked, ErrBlocked
	}
	return u, unlinked, nil
}

// tellPasswordChanged mails u that their password changed (how): whoever
// holds the inbox learns of a change they did not make. The change stands
// when the mail cannot be queued.
func (a *Accounts) tellPasswordChanged(ctx context.Context, u *model.User, how string) {
	subject, text := email.PasswordChanged(greeted(u), how, a.BaseURL)
	a.notify(ctx, u.ID, u.Email, greeted(u), subject, text)
}

// ChangePassword sets a new password after checking the current one (an
// account without a password sets its first one).
func (a *Accounts) ChangePassword(ctx context.Context, u *model.User, current, next string) error {
	if u.PasswordHash != nil {
		if err := CheckPassword(*u.PasswordHash, current); err != nil {
			if errors.Is(err, ErrPasswordMismatch) {
				return ErrBadCredentials
			}
			return err
		}
	}
	hash, err := HashPassword(next)
	if err != nil {
		return err
	}
	// Reset links mailed before stop working: one that leaked would
	// otherwise undo the change; so does a move to another address asked
	// for before (by whoever knew the old password, maybe).
	err = a.Store.InTx(ctx, func(tx *store.Store) error {
		if _, err := tx.LockUser(ctx, u.ID); err != nil {
			return err
		}
		if err := tx.SetPassword(ctx, u.ID, hash); err != nil {
			return err
		}
		return tx.RevokeTokens(ctx, u.ID, model.TokenChangeEmail, model.TokenResetPassword)
	})
	if err != nil {
		return err
	}
	if u.PasswordHash != nil {
		a.tellPasswordChanged(ctx, u, "changed on the account page")
	} else {
		a.tellPasswordChanged(ctx, u, "set on the account page (the account had none)")
	}
	return nil
}

// OAuthSignIn finds or creates the account of a provider's user: a known
// identity signs its user in; otherwise a verified email links to the
// account of that email when it has no password or is not confirmed yet
// (its password goes: whoever set it never proved the address), or
// creates a confirmed account.
//
// A confirmed account with a password is not joined (ErrPasswordAccount):
// its password may be someone else's. An account registered with another
// person's address is confirmed as soon as anything opens the mailed link
// (a mail scanner does), and joining it would let its registrant's
// password into what the address's owner keeps there. Its owner signs in
// with the password (or resets it, which proves the address) and links
// the provider from the account page.
func (a *Accounts) OAuthSignIn(ctx context.Context, provider string, gu goth.User) (*model.User, error) {
	if gu.UserID == "" {
		return nil, fmt.Errorf("oauth sign-in: %s gave no user id", provider)
	}
	ident, err := a.Store.IdentityByProvider(ctx, provider, gu.UserID)
	if err == nil {
		u, err := a.Store.UserByID(ctx, ident.UserID)
		if err != nil {
			return nil, err
		}
		if u.Blocked() {
			return u, ErrBlocked
		}
		return u, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	addr, verified := VerifiedEmail(provider, gu)
	if !verified {
		return nil, ErrNoVerifiedEmail
	}
	var u *model.User
	linked := false // to an account that was there before
	err = a.Store.InTx(ctx, func(tx *store.Store) error {
		// Decided on the account as it is under its lock: one confirmed
		// meanwhile (its owner's click) is a confirmed one.
		existing, err := tx.UserByEmail(ctx, addr)
		if err == nil {
			existing, err = tx.LockUser(ctx, existing.ID)
		}
		switch {
		case err == nil:
			u, linked = existing, existing.EmailConfirmedAt != nil
			if u.EmailConfirmedAt != nil && u.PasswordHash != nil {
				return ErrPasswordAccount
			}
			if u.EmailConfirmedAt == nil {
				// The provider proved the address; the password, name and
				// time zone were set by someone who never did, so they go
				// (a reset can set a password): the account starts as one
				// the provider's sign-in creates.
				u.FullName, u.TimeZone, u.PasswordHash = providerName(gu), model.DefaultTimeZone, nil
				if err := tx.ResetUnconfirmed(ctx, u.ID, u.FullName, u.TimeZone); err != nil {
					return err
				}
			}
			if err := tx.ConfirmEmail(ctx, u.ID); err != nil {
				return err
			}
		case errors.Is(err, store.ErrNotFound):
			// An address an account moved away from within the week is
			// kept for it (see Register).
			if kept, err := tx.AddressKept(ctx, addr); err != nil || kept {
				if err == nil {
					err = ErrAddressKept
				}
				return err
			}
			now := time.Now()
			u = &model.User{Email: addr, FullName: providerName(gu), EmailConfirmedAt: &now}
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
		default:
			return err
		}
		return tx.CreateIdentity(ctx, &model.Identity{UserID: u.ID, Provider: provider, ProviderUserID: gu.UserID, Email: addr})
	})
	if err != nil {
		return nil, fmt.Errorf("oauth sign-in: %w", err)
	}
	if u.Blocked() {
		return u, ErrBlocked
	}
	if linked {
		a.tellLinked(ctx, u, provider, addr)
	}
	return u, nil
}

// providerName is the name a provider gives for its user, fit for a
// profile.
func providerName(gu goth.User) string {
	name := strings.TrimSpace(gu.Name)
	if name == "" {
		name = strings.TrimSpace(gu.FirstName + " " + gu.LastName)
	}
	if name == "" {
		name = gu.NickName
	}
	return truncate(oneLine(name), 200)
}

// OAuthLink links a provider's account to the signed-in user u (its
// address need not be u's, but the provider must vouch for it). An
// identity already linked to u is fine; one linked to another user is
// ErrIdentityTaken.
func (a *Accounts) OAuthLink(ctx context.Context, u *model.User, provider string, gu goth.User) error {
	if gu.UserID == "" {
		return fmt.Errorf("oauth link: %s gave no user id", provider)
	}
	ident, err := a.Store.IdentityByProvider(ctx, provider, gu.UserID)
	if err == nil {
		if ident.UserID == u.ID {
			return nil
		}
		return ErrIdentityTaken
	}
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	addr, verified := VerifiedEmail(provider, gu)
	if !verified {
		return ErrNoVerifiedEmail
	}
	err = a.Store.CreateIdentity(ctx, &model.Identity{UserID: u.ID, Provider: provider, ProviderUserID: gu.UserID, Email: addr})
	if errors.Is(err, store.ErrConflict) {
		return ErrIdentityTaken // linked by a concurrent request
	}
	if err == nil {
		a.tellLinked(ctx, u, provider, addr)
	}
	return err
}

// tellLinked mails u that the provider's account (identity: its address)
// now signs in to theirs. A sign-in by a provider's account that gives the
// address of an account is linked to it at once, so whoever owns the
// address learns of every new way in. The sign-in goes on when the mail
// cannot be queued.
func (a *Accounts) tellLinked(ctx context.Context, u *model.User, provider, identity string) {
	subject, text := email.Linked(greeted(u), label(provider), identity, a.BaseURL)
	a.notify(ctx, u.ID, u.Email, greeted(u), subject, text)
}

// oneLine makes a name from a provider fit a name field: control
// characters (line breaks, NUL, DEL, C1) and line separators become spaces.
func oneLine(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || 0x7f <= r && r <= 0x9f || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s))
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n])
	}
	return s
}

func (a *Accounts) newLink(ctx context.Context, userID int64, purpose model.TokenPurpose, path string) (string, error) {
	return a.newLinkIn(ctx, a.Store, &model.Token{UserID: userID, Purpose: purpose}, path)
}

// newLinkIn stores token t (its user, purpose and address), made and
// timed here, and returns its link under path.
func (a *Accounts) newLinkIn(ctx context.Context, st *store.Store, t *model.Token, path string) (string, error) {
	ttl := ConfirmTokenTTL
	switch t.Purpose {
	case model.TokenResetPassword:
		ttl = ResetTokenTTL
	case model.TokenRevertEmail:
		ttl = RevertTokenTTL
	}
	plain, hash := NewToken()
	t.TokenHash, t.ExpiresAt = hash, time.Now().Add(ttl)
	if err := st.CreateToken(ctx, t); err != nil {
		return "", err
	}
	return a.BaseURL + path + plain, nil
}

func (a *Accounts) findToken(ctx context.Context, purpose model.TokenPurpose, plain string) (*model.Token, error) {
	return findToken(ctx, a.Store, purpose, plain)
}

func findToken(ctx context.Context, st *store.Store, purpose model.TokenPurpose, plain string) (*model.Token, error) {
	if plain == "" || len(plain) > 100 {
		return nil, ErrTokenInvalid
	}
	t, err := st.TokenByHash(ctx, purpose, HashToken(plain))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrTokenInvalid
	}
	if err != nil {
		return nil, err
	}
	if t.UsedAt != nil {
		return t, ErrTokenUsed
	}
	if !time.Now().Before(t.ExpiresAt) {
		return t, ErrTokenExpired
	}
	return t, nil
}

// useToken marks a token used (only one of concurrent uses wins) and
// retires the user's other tokens of the same purpose, inside st's
// transaction.
func useToken(ctx context.Context, st *store.Store, purpose model.TokenPurpose, plain string) (*model.Token, error) {
	t, err := findToken(ctx, st, purpose, plain)
	if err != nil {
		return nil, err
	}
	if _, err := st.LockUser(ctx, t.UserID); err != nil {
		return nil, err
	}
	ok, err := st.UseToken(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrTokenUsed // used by a concurrent request
	}
	if err := st.RevokeTokens(ctx, t.UserID, purpose); err != nil {
		return nil, err
	}
	return t, nil
}

// useAddressToken uses a link mailed to an address (of purpose), under its
// user's lock (useToken's), and returns it with its user; a blocked user's
// link does nothing (ErrBlocked: the transaction ends, the link unused).
func useAddressToken(ctx context.Context, tx *store.Store, purpose model.TokenPurpose, token string) (*model.Token, *model.User, error) {
	t, err := useToken(ctx, tx, purpose, token)
	if err != nil {
		return nil, nil, err
	}
	u, err := tx.UserByID(ctx, t.UserID)
	if err != nil {
		return nil, nil, err
	}
	if u.Blocked() {
		return t, u, ErrBlocked
	}
	return t, u, nil
}

// greeted is the name u's mail greets, in its text and its To: none until
// the address is confirmed. Anyone can register any address, and the name
// they give would otherwise be their own words in a mail from us to it ("your
// account is suspended, go to …").
func greeted(u *model.User) string {
	if u.EmailConfirmedAt == nil {
		return ""
	}
	return u.FullName
}

// mail enqueues one transactional mail to u, unless the address already
// got MailLimit's worth recently (then it is dropped and logged: the
// answer to the visitor stays the same).
func (a *Accounts) mail(ctx context.Context, u *model.User, subject, text string) error {
	if !a.mayMail(ctx, u) {
		return nil
	}
	return a.enqueueMail(ctx, u, subject, text)
}

// mayMail takes one of the mails the address may get (MailLimit) and
// reports whether there was one left.
func (a *Accounts) mayMail(ctx context.Context, u *model.User) bool {
	return a.mayMailTo(ctx, u.Email, "user_id", u.ID)
}

// mayNotify takes one of the notices the account of userID may get at
// its address addr (a changed password, a move asked for or made): an
// allowance of their own, which only the account's own actions spend, so
// that requests anyone can make (forgot password, register again) cannot
// spend it and keep the owner from being told.
func (a *Accounts) mayNotify(ctx context.Context, addr string, userID int64) bool {
	return a.mayMailTo(ctx, "notice:"+addr, "user_id", userID)
}

// notify mails the account of userID a notice at addr (named name), within
// the notices' allowance (mayNotify).
func (a *Accounts) notify(ctx context.Context, userID int64, addr, name, subject, text string) {
	if a.mayNotify(ctx, addr, userID) {
		a.tell(ctx, userID, addr, name, subject, text)
	}
}

// tell queues a notice to the account of userID at addr (named name): what
// it tells of stands when it cannot be queued, which is logged.
func (a *Accounts) tell(ctx context.Context, userID int64, addr, name, subject, text string) {
	if err := a.enqueueMailTo(ctx, addr, name, subject, text); err != nil {
		a.Log.WarnContext(ctx, "notice not queued", "user_id", userID, "subject", subject, "error", err.Error())
	}
}

// mayMailTo is mayMail for an address; who names it in the log.
func (a *Accounts) mayMailTo(ctx context.Context, addr string, who ...any) bool {
	if a.MailLimit == nil {
		return true
	}
	blocked, err := a.MailLimit.Take(ctx, strings.ToLower(addr))
	if err != nil {
		// Fail open: a Redis hiccup must not stop a confirmation mail.
		a.Log.WarnContext(ctx, "account mail limit unavailable", "error", err.Error())
	}
	if blocked {
		a.Log.WarnContext(ctx, "account mail dropped: too many to one address", who...)
		return false
	}
	return true
}

// enqueueMail queues a mail to u.
func (a *Accounts) enqueueMail(ctx context.Context, u *model.User, subject, text string) error {
	return a.enqueueMailTo(ctx, u.Email, greeted(u), subject, text)
}

// enqueueMailTo queues a mail to addr, whose owner is named name.
func (a *Accounts) enqueueMailTo(ctx context.Context, addr, name, subject, text string) error {
	t, err := task.NewEmailDeliverTask(task.EmailDeliverPayload{To: addr, ToName: name, Subject: subject, Text: text})
	if err != nil {
		return err
	}
	if _, err := a.Queue.EnqueueContext(ctx, t); err != nil {
		return fmt.Errorf("enqueue mail: %w", err)
	}
	return nil
}
