// Package redislease hands out Redis database indexes 1..15 of one server
// to the processes that share it — test binaries and `consentsync demo` —
// through a lock key per index in database 0, so no two of them ever flush
// or use the same index at once.
package redislease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ttl is how long a lease holds without being released: a crashed holder's
// index is free again after it.
const ttl = 10 * time.Minute

// ErrNoFreeIndex: every index 1..15 stayed leased for the whole wait.
var ErrNoFreeIndex = errors.New("no free Redis database index (1..15)")

// Lease takes a free database index of the Redis server serverURL (a
// redis:// URL; any index in it is ignored), flushes it, and returns its
// URL and a release function that flushes it again and frees it. It waits
// up to wait for an index to become free.
func Lease(ctx context.Context, serverURL string, wait time.Duration) (string, func(), error) {
	base := strings.TrimSuffix(serverURL, "/")
	if i := strings.LastIndexByte(base, '/'); i > len("redis://") {
		if tail := base[i+1:]; tail != "" && strings.Trim(tail, "0123456789") == "" {
			base = base[:i]
		}
	}
	ctlOpt, err := redis.ParseURL(base + "/0")
	if err != nil {
		return "", nil, fmt.Errorf("redis URL: %w", err)
	}
	ctl := redis.NewClient(ctlOpt)
	owner := randHex(8)
	deadline := time.Now().Add(wait)
	for {
		for i := 1; i <= 15; i++ {
			key := fmt.Sprintf("consentsync:testenv:db:%d", i)
			ok, err := ctl.SetNX(ctx, key, owner, ttl).Result()
			if err != nil {
				ctl.Close()
				return "", nil, fmt.Errorf("redis is not reachable: %w", err)
			}
			if !ok {
				continue
			}
			u := fmt.Sprintf("%s/%d", base, i)
			opt, _ := redis.ParseURL(u)
			c := redis.NewClient(opt)
			if err := c.FlushDB(ctx).Err(); err != nil {
				c.Close()
				ctl.Del(context.Background(), key)
				ctl.Close()
				return "", nil, fmt.Errorf("flush redis db %d: %w", i, err)
			}
			release := func() {
				// Flush and free the index only while the lease is still ours
				// (it lapses after ttl): never another holder's queues.
				if v, _ := ctl.Get(context.Background(), key).Result(); v == owner {
					_ = c.FlushDB(context.Background()).Err()
					ctl.Del(context.Background(), key)
				}
				c.Close()
				ctl.Close()
			}
			return u, release, nil
		}
		if time.Now().After(deadline) {
			ctl.Close()
			return "", nil, ErrNoFreeIndex
		}
		select {
		case <-ctx.Done():
			ctl.Close()
			return "", nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
