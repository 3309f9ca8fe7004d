package mail_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"

	"rassylka/app/mail"
	"rassylka/app/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

// Two workers sharing a rate never put more sends in one window than the
// rate allows, together.
func TestSharedRateHoldsAcrossWorkers(t *testing.T) {
	rdb := testkit.Redis(t)
	ctx := context.Background()
	const perSecond, sends = 20, 50
	workers := []*mail.SharedRate{mail.NewSharedRate(rdb, "test", perSecond), mail.NewSharedRate(rdb, "test", perSecond)}
	var wg sync.WaitGroup
	for i := range sends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := workers[i%2].Wait(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	keys, err := rdb.Keys(ctx, "mail-rate:test:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, k := range keys {
		n, err := rdb.Get(ctx, k).Int()
		if err != nil {
			t.Fatal(err)
		}
		if n > perSecond {
			t.Errorf("window %s took %d sends, over %d", k, n, perSecond)
		}
		total += n
	}
	if total != sends || len(keys) < (sends+perSecond-1)/perSecond {
		t.Fatalf("%d sends counted in %d windows; want %d in at least %d", total, len(keys), sends, (sends+perSecond-1)/perSecond)
	}
}

// A rate under one per second spreads its window over several seconds.
func TestSharedRateBelowOnePerSecond(t *testing.T) {
	rdb := testkit.Redis(t)
	ctx, cancel := context.WithCancel(context.Background())
	l := mail.NewSharedRate(rdb, "slow", 0.25)
	if err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Wait(ctx) }()
	cancel() // the second send would wait up to four seconds; it gives up
	if err := <-done; err == nil {
		t.Fatal("a second send in a 4-second window went at once")
	}
	keys, _ := rdb.Keys(context.Background(), "mail-rate:slow:*").Result()
	if len(keys) != 1 {
		t.Fatalf("windows %v", keys)
	}
	ms, _ := strconv.ParseInt(keys[0][len("mail-rate:slow:"):], 10, 64)
	if ms%4000 != 0 {
		t.Fatalf("window start %d is not on a 4-second boundary", ms)
	}
}
