package pages

import (
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// limiters holds one token bucket per key (an IP, a link's token id) in a
// bounded LRU: memory stays fixed whatever the number of clients, and a
// key evicted and seen again starts with a full bucket (fail open for the
// person, never for the database: the bucket size bounds a burst).
type limiters struct {
	mu    sync.Mutex
	cache *lru.Cache[string, *rate.Limiter]
	every rate.Limit
	burst int
}

// limiterEntries bounds the keys each limiter remembers.
const limiterEntries = 1 << 14

func newLimiters(perMinute int) *limiters {
	c, _ := lru.New[string, *rate.Limiter](limiterEntries)
	return &limiters{cache: c, every: rate.Every(time.Minute / time.Duration(perMinute)), burst: perMinute}
}

// allow takes one token of key's bucket at now; false: over the limit.
func (l *limiters) allow(key string, now time.Time) bool {
	l.mu.Lock()
	lim, ok := l.cache.Get(key)
	if !ok {
		lim = rate.NewLimiter(l.every, l.burst)
		l.cache.Add(key, lim)
	}
	l.mu.Unlock()
	return lim.AllowN(now, 1)
}
