// Package model holds the Bun models of Rassylka's tables and their
// enumerations. It has no queries: those live in app/store.
package model

import (
	"time"

	"github.com/uptrace/bun"
)

// Role is what a user may do.
type Role string

// Roles.
const (
	RoleUser    Role = "user"
	RoleManager Role = "manager"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleUser || r == RoleManager }

// User is an account of the web application.
type User struct {
	bun.BaseModel `bun:"table:users"`

	ID               int64      `bun:"id,pk,autoincrement"`
	Email            string     `bun:"email,notnull"`
	FullName         string     `bun:"full_name,notnull"`
	PasswordHash     *string    `bun:"password_hash"`
	PasswordSetAt    *time.Time `bun:"password_changed_at"` // nil: when the account was made
	Role             Role       `bun:"role,notnull"`
	BlockedAt        *time.Time `bun:"blocked_at"`
	EmailConfirmedAt *time.Time `bun:"email_confirmed_at"`
	TimeZone         string     `bun:"time_zone,notnull"`
	SenderName       string     `bun:"sender_name,notnull"`      // the From name of their mailings' mail; "": MAIL_FROM's
	ReplyTo          string     `bun:"reply_to,notnull"`         // the Reply-To of their mailings' mail; "": none
	ReplyToPending   string     `bun:"reply_to_pending,notnull"` // a reply address mailed a link to confirm it; "": none
	CreatedAt        time.Time  `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt        time.Time  `bun:"updated_at,notnull,default:current_timestamp"`
}

// Blocked reports whether a manager has blocked the user.
func (u *User) Blocked() bool { return u.BlockedAt != nil }

// IsManager reports whether the user has the manager role.
func (u *User) IsManager() bool { return u.Role == RoleManager }

// Identity links a user to an OAuth provider's account.
type Identity struct {
	bun.BaseModel `bun:"table:identities"`

	ID             int64     `bun:"id,pk,autoincrement"`
	UserID         int64     `bun:"user_id,notnull"`
	Provider       string    `bun:"provider,notnull"`
	ProviderUserID string    `bun:"provider_user_id,notnull"`
	Email          string    `bun:"email,notnull"`
	CreatedAt      time.Time `bun:"created_at,notnull,default:current_timestamp"`
}

// TokenPurpose says what a mailed token may be used for.
type TokenPurpose string

// Token purposes.
const (
	TokenConfirmEmail   TokenPurpose = "confirm_email"
	TokenResetPassword  TokenPurpose = "reset_password"
	TokenConfirmReplyTo TokenPurpose = "confirm_reply_to" // of users.reply_to_pending
	TokenChangeEmail    TokenPurpose = "change_email"     // to the address it names
	TokenRevertEmail    TokenPurpose = "revert_email"     // back to the address it names, after a move
)

// Token is a single-use token mailed to a user; only its hash is stored.
type Token struct {
	bun.BaseModel `bun:"table:tokens"`

	ID        int64        `bun:"id,pk,autoincrement"`
	UserID    int64        `bun:"user_id,notnull"`
	Purpose   TokenPurpose `bun:"purpose,notnull"`
	TokenHash []byte       `bun:"token_hash,notnull"`
	ExpiresAt time.Time    `bun:"expires_at,notnull"`
	UsedAt    *time.Time   `bun:"used_at"`
	Address   string       `bun:"address,nullzero"` // the address a TokenConfirmReplyTo, TokenChangeEmail or TokenRevertEmail is for
	CreatedAt time.Time    `bun:"created_at,notnull,default:current_timestamp"`
}

// Client is a recipient of mailings, owned by one user.
type Client struct {
	bun.BaseModel `bun:"table:clients"`

	ID             int64      `bun:"id,pk,autoincrement"`
	OwnerID        int64      `bun:"owner_id,notnull"`
	Email          string     `bun:"email,notnull"`
	FullName       string     `bun:"full_name,notnull"`
	Comment        string     `bun:"comment,notnull"`
	UnsubscribedAt *time.Time `bun:"unsubscribed_at"`
	BouncedAt      *time.Time `bun:"bounced_at"`
	CreatedAt      time.Time  `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt      time.Time  `bun:"updated_at,notnull,default:current_timestamp"`
}

// Message is the subject and text body a mailing sends.
type Message struct {
	bun.BaseModel `bun:"table:messages"`

	ID        int64     `bun:"id,pk,autoincrement"`
	OwnerID   int64     `bun:"owner_id,notnull"`
	Subject   string    `bun:"subject,notnull"`
	Body      string    `bun:"body,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt time.Time `bun:"updated_at,notnull,default:current_timestamp"`
	// FormKey is the key of the form that created it ("": none), so that
	// the same form sent twice creates one.
	FormKey string `bun:"form_key,nullzero"`
}

// Repeat is how often a mailing's runs recur inside its window.
type Repeat string

// Repeats.
const (
	RepeatOnce    Repeat = "once"
	RepeatDaily   Repeat = "daily"
	RepeatWeekly  Repeat = "weekly"
	RepeatMonthly Repeat = "monthly"
)

// MailingStatus is where a mailing stands in its window.
type MailingStatus string

// Mailing statuses.
const (
	StatusCreated  MailingStatus = "created"
	StatusRunning  MailingStatus = "running"
	StatusFinished MailingStatus = "finished"
)

// Mailing sends one message to a set of clients inside a window.
type Mailing struct {
	bun.BaseModel `bun:"table:mailings"`

	ID         int64         `bun:"id,pk,autoincrement"`
	OwnerID    int64         `bun:"owner_id,notnull"`
	MessageID  int64         `bun:"message_id,notnull"`
	StartsAt   time.Time     `bun:"starts_at,notnull"`
	EndsAt     time.Time     `bun:"ends_at,notnull"`
	Repeat     Repeat        `bun:"repeat,notnull"`
	Status     MailingStatus `bun:"status,notnull"`
	NextRunAt  *time.Time    `bun:"next_run_at"`
	DisabledAt *time.Time    `bun:"disabled_at"`
	DisabledBy *int64        `bun:"disabled_by"`
	CreatedAt  time.Time     `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt  time.Time     `bun:"updated_at,notnull,default:current_timestamp"`
	// EditedAt is the version of its settings: when its owner last saved
	// them (UpdatedAt also moves with its runs and its switch).
	EditedAt time.Time `bun:"edited_at,notnull,default:current_timestamp"`
	// FormKey is the key of the form that created it ("": none), so that
	// the same form sent twice creates one mailing, not two.
	FormKey string `bun:"form_key,nullzero"`
}

// Disabled reports whether the mailing is switched off.
func (m *Mailing) Disabled() bool { return m.DisabledAt != nil }

// MailingRecipient puts a client on a mailing.
type MailingRecipient struct {
	bun.BaseModel `bun:"table:mailing_recipients"`

	MailingID int64 `bun:"mailing_id,pk"`
	ClientID  int64 `bun:"client_id,pk"`
}

// Trigger says what started a run.
type Trigger string

// Triggers.
const (
	TriggerScheduled Trigger = "scheduled"
	TriggerManual    Trigger = "manual"
)

// Run is one start of the send process for a mailing.
type Run struct {
	bun.BaseModel `bun:"table:runs"`

	ID         int64      `bun:"id,pk,autoincrement"`
	MailingID  int64      `bun:"mailing_id,notnull"`
	Trigger    Trigger    `bun:"trigger,notnull"`
	DueAt      *time.Time `bun:"due_at"`
	StartedAt  time.Time  `bun:"started_at,notnull,default:current_timestamp"`
	FinishedAt *time.Time `bun:"finished_at"`
	RetryOf    *int64     `bun:"retry_of"` // a retry of this run's temporary failures
	RestOf     *int64     `bun:"rest_of"`  // sends to those this full run (and those after it) did not reach
	Total      int        `bun:"total,notnull"`
	Succeeded  int        `bun:"succeeded,notnull"`
	Failed     int        `bun:"failed,notnull"`
	Skipped    int        `bun:"skipped,notnull"`
	// Unreached is how many of Skipped could have been mailed but were not
	// reached before the run stopped (switched off, owner blocked, window
	// closed).
	Unreached int `bun:"unreached,notnull"`
	// Subject is the subject of the run's message when it started (""
	// for runs from before it was kept).
	Subject string `bun:"subject,nullzero"`
	// Mailable is, on a run just started, how many of Total it may mail:
	// the others have unsubscribed or bounced, and are skipped. Not stored.
	Mailable int `bun:"-"`
}

// AttemptStatus is the outcome of one send.
type AttemptStatus string

// Attempt statuses. Pending marks a send claimed but not yet answered.
const (
	AttemptPending AttemptStatus = "pending"
	AttemptSuccess AttemptStatus = "success"
	AttemptFailure AttemptStatus = "failure"
)

// Attempt records one send of a run to one client, with the server's answer.
type Attempt struct {
	bun.BaseModel `bun:"table:attempts"`

	ID          int64         `bun:"id,pk,autoincrement"`
	RunID       int64         `bun:"run_id,notnull"`
	MailingID   int64         `bun:"mailing_id,notnull"`
	ClientID    *int64        `bun:"client_id"`
	Email       string        `bun:"email,notnull"`
	Status      AttemptStatus `bun:"status,notnull"`
	Code        *int          `bun:"code"`
	Response    string        `bun:"response,notnull"`
	Tries       int           `bun:"tries,notnull"`
	AttemptedAt time.Time     `bun:"attempted_at,notnull,default:current_timestamp"`
}

// RunBatch is one range of a run's recipients, processed by one task.
type RunBatch struct {
	bun.BaseModel `bun:"table:run_batches"`

	RunID   int64      `bun:"run_id,pk"`
	Seq     int        `bun:"seq,pk"`
	FromID  int64      `bun:"from_id,notnull"` // exclusive
	ToID    *int64     `bun:"to_id"`           // inclusive; nil = open
	DoneAt  *time.Time `bun:"done_at"`
	Skipped int        `bun:"skipped,notnull"`
	// Unreached is how many of Skipped were mailable but not reached.
	Unreached int `bun:"unreached,notnull"`
}
