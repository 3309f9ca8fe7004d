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

// UnsubscribeToken is the opaque, signed token of one client's unsubscribe
// link: the client and owner ids with an HMAC under secret of the ids and
// the address the mail goes to, so that the link stops working (rather
// than reaching someone else) once the owner changes the client's
// address. It never expires, as RFC 8058 links must keep working.
func UnsubscribeToken(secret string, clientID, ownerID int64, email string) string {
	b := make([]byte, 16, 16+16)
	binary.BigEndian.PutUint64(b[:8], uint64(clientID))
	binary.BigEndian.PutUint64(b[8:], uint64(ownerID))
	b = append(b, unsubscribeMAC(secret, b, email)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseUnsubscribeToken returns the client and owner a token names. It
// checks only the token's shape: VerifyUnsubscribeToken checks it was
// signed for that client's current address.
func ParseUnsubscribeToken(token string) (clientID, ownerID int64, err error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != 32 {
		return 0, 0, ErrBadUnsubscribeToken
	}
	return int64(binary.BigEndian.Uint64(b[:8])), int64(binary.BigEndian.Uint64(b[8:16])), nil
}

// VerifyUnsubscribeToken reports whether token was signed under secret for
// the client and owner it names and the address email.
func VerifyUnsubscribeToken(secret, token, email string) bool {
	b, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil && len(b) == 32 && hmac.Equal(b[16:], unsubscribeMAC(secret, b[:16], email))
}

func unsubscribeMAC(secret string, ids []byte, email string) []byte {
	m := hmac.New(sha256.New, []byte("unsubscribe:"+secret))
	m.Write(ids)
	m.Write([]byte(strings.ToLower(strings.TrimSpace(email))))
	return m.Sum(nil)[:16]
}
