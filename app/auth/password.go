// Package auth owns who a request is: password hashing, mailed tokens,
// sessions, OAuth providers and the middleware that requires a signed-in
// user or a manager.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters. RFC 9106 §4 recommends t=3, m=64 MiB as the second
// choice when 2 GiB per hash is not affordable; OWASP's cheapest listed
// setting is m=19 MiB, t=2. We take t=3, m=64 MiB, p=2: ~70 ms per hash on a
// 2-core machine, which bounds a sign-in flood to tens of hashes per second
// per core while a person does not notice the wait.
const (
	argonTime    = 3
	argonMemory  = 64 * 1024 // KiB
	argonThreads = 2
	argonKeyLen  = 32
	argonSaltLen = 16
)

// MinPasswordLength is the shortest password accepted.
const MinPasswordLength = 8

// ErrPasswordMismatch is returned by CheckPassword for a wrong password.
var ErrPasswordMismatch = errors.New("password does not match")

// HashPassword returns the PHC-formatted argon2id hash of password.
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argonKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword compares password with a hash made by HashPassword, using
// the parameters stored in the hash.
func CheckPassword(hash, password string) error {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return errors.New("check password: unknown hash format")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return errors.New("check password: unsupported argon2 version")
	}
	var mem uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &t, &p); err != nil {
		return fmt.Errorf("check password: bad parameters: %w", err)
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return fmt.Errorf("check password: bad salt: %w", err)
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil {
		return fmt.Errorf("check password: bad key: %w", err)
	}
	got := argonKey([]byte(password), salt, t, mem, p, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrPasswordMismatch
	}
	return nil
}

// maxHashes bounds the password hashes a process runs at once. Each holds
// its memory parameter (64 MiB) until it is done, and sign-ins that arrive
// together (ten per client address pass the throttle before any fails)
// would otherwise all hash at once: ten from one address held 700 MB.
// Four keep two to eight cores busy in 256 MiB; the others wait their turn.
const maxHashes = 4

// hashSlots holds one token per hash running in this process.
var hashSlots = make(chan struct{}, maxHashes)

// idKey is argon2.IDKey (tests watch it).
var idKey = argon2.IDKey

// argonKey is argon2.IDKey run in one of the process's hash slots.
func argonKey(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	return idKey(password, salt, time, memory, threads, keyLen)
}
