package auth

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/argon2"
)

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("hash %q is not argon2id with the documented parameters", h)
	}
	if err := CheckPassword(h, "correct horse battery"); err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	if err := CheckPassword(h, "correct horse batterY"); !errors.Is(err, ErrPasswordMismatch) {
		t.Fatalf("wrong password: %v, want ErrPasswordMismatch", err)
	}
	h2, _ := HashPassword("correct horse battery")
	if h2 == h {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	for _, bad := range []string{"", "plain", "$bcrypt$x$y$z$w", "$argon2id$v=19$m=x$a$b"} {
		if err := CheckPassword(bad, "x"); err == nil || errors.Is(err, ErrPasswordMismatch) {
			t.Errorf("malformed hash %q: %v", bad, err)
		}
	}
}

// A hash holds argonMemory (64 MiB) while it runs: however many sign-ins
// arrive at once, at most maxHashes are hashed at a time, the others wait
// for a slot (ten failed sign-ins at once from one address held 700 MB).
func TestHashesAtOnceBounded(t *testing.T) {
	var inside atomic.Int32
	release := make(chan struct{})
	idKey = func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		inside.Add(1)
		defer inside.Add(-1)
		<-release
		return make([]byte, keyLen)
	}
	defer func() { idKey = argon2.IDKey }()

	const callers = 3 * maxHashes
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = HashPassword("a sign-in flood")
		}()
	}
	defer wg.Wait()
	defer close(release)
	// Wait until every caller is hashing or waiting for a slot.
	for {
		n := int(inside.Load())
		if n > maxHashes {
			t.Fatalf("%d hashes at once, want at most %d", n, maxHashes)
		}
		if n == maxHashes && waitingForSlot() == callers-maxHashes {
			return
		}
		runtime.Gosched()
	}
}

// waitingForSlot counts the goroutines blocked on a hash slot.
func waitingForSlot() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[chan send") && strings.Contains(g, "auth.argonKey(") {
			n++
		}
	}
	return n
}
