package mail

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
)

// ErrBadUnsubscribeToken is returned for a token this site did not sign.
var ErrBadUnsubscribeToken = errors.New("unsubscribe token not valid")

// UnsubscribeLink is what an unsubscribe token names: one address of one
// owner's list, and the client it was mailed to.
type UnsubscribeLink struct {
	ClientID, OwnerID int64
	// Email is the address the mail went to, as it was written: an
	// unsubscription holds for it even once its client is deleted or given
	// another address. (Its letter case is the database's to fold, as it
	// folds clients' addresses.) Empty for a token made before tokens
	// carried it, whose address is its client's (VerifyUnsubscribeToken).
	Email string
}

// UnsubscribeToken is the opaque, signed token of one client's unsubscribe
// link: the client and owner ids, an HMAC under secret of the ids and the
// address the mail goes to, and that address. It never expires, as RFC
// 8058 links must keep working.
func UnsubscribeToken(secret string, clientID, ownerID int64, email string) string {
	email = strings.TrimSpace(email)
	b := make([]byte, 16, 32+len(email))
	binary.BigEndian.PutUint64(b[:8], uint64(clientID))
	binary.BigEndian.PutUint64(b[8:], uint64(ownerID))
	b = append(b, unsubscribeMAC(secret, b, email)...)
	b = append(b, email...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ReadUnsubscribeToken returns what token names. A token that carries its
// address is checked here; one made before tokens did (Email empty) only
// for its shape, and VerifyUnsubscribeToken checks it against its
// client's current address.
func ReadUnsubscribeToken(secret, token string) (UnsubscribeLink, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < 32 {
		return UnsubscribeLink{}, ErrBadUnsubscribeToken
	}
	l := UnsubscribeLink{ClientID: int64(binary.BigEndian.Uint64(b[:8])), OwnerID: int64(binary.BigEndian.Uint64(b[8:16]))}
	if len(b) == 32 {
		return l, nil
	}
	l.Email = string(b[32:])
	if !hmac.Equal(b[16:32], unsubscribeMAC(secret, b[:16], l.Email)) {
		return UnsubscribeLink{}, ErrBadUnsubscribeToken
	}
	return l, nil
}

// VerifyUnsubscribeToken reports whether token, one made before tokens
// carried their address, was signed under secret for the client and owner
// it names and the address email.
func VerifyUnsubscribeToken(secret, token, email string) bool {
	b, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil && len(b) == 32 && hmac.Equal(b[16:32], unsubscribeMAC(secret, b[:16], email))
}

// unsubscribeMAC signs the ids and the address, in lower case whatever
// its case, as links have always been signed (the address a mail went to
// and its client's, which the database compares in any case, sign alike).
func unsubscribeMAC(secret string, ids []byte, email string) []byte {
	m := hmac.New(sha256.New, []byte("unsubscribe:"+secret))
	m.Write(ids)
	m.Write([]byte(strings.ToLower(strings.TrimSpace(email))))
	return m.Sum(nil)[:16]
}
