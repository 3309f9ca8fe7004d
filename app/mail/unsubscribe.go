package mail

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
)

// ErrBadUnsubscribeToken is returned for a token this site did not sign.
var ErrBadUnsubscribeToken = errors.New("unsubscribe token not valid")

// UnsubscribeToken is the opaque, signed token of one client's unsubscribe
// link: the client and owner ids with an HMAC under secret. It never
// expires, as RFC 8058 links must keep working.
func UnsubscribeToken(secret string, clientID, ownerID int64) string {
	b := make([]byte, 16, 16+16)
	binary.BigEndian.PutUint64(b[:8], uint64(clientID))
	binary.BigEndian.PutUint64(b[8:], uint64(ownerID))
	b = append(b, unsubscribeMAC(secret, b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseUnsubscribeToken checks a token and returns its client and owner.
func ParseUnsubscribeToken(secret, token string) (clientID, ownerID int64, err error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != 32 || !hmac.Equal(b[16:], unsubscribeMAC(secret, b[:16])) {
		return 0, 0, ErrBadUnsubscribeToken
	}
	return int64(binary.BigEndian.Uint64(b[:8])), int64(binary.BigEndian.Uint64(b[8:16])), nil
}

func unsubscribeMAC(secret string, data []byte) []byte {
	m := hmac.New(sha256.New, []byte("unsubscribe:"+secret))
	m.Write(data)
	return m.Sum(nil)[:16]
}
