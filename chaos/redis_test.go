//go:build chaos

package chaos

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentsync/consentsync/internal/harness"
)

// TestRedisFlushAllThenRestartEmpty is fault 2: Redis is flushed
// (FLUSHALL) mid-load, then SIGKILLed and restarted empty while the load
// goes on; every acknowledged request is processed and every withdrawal
// pushed within 2 × worker.sweep_after after Redis is back (Postgres holds
// the work, the sweeper re-enqueues it).
func TestRedisFlushAllThenRestartEmpty(t *testing.T) {
	const (
		sweepAfter = 3 * time.Second
		rate       = 25.0
		// slack: one sweep_every tick, asynq reconnecting to the new
		// Redis, and draining the backlog on a loaded 2-core machine.
		slack = 8 * time.Second
	)
	e := newEnv(t, harness.Config{SweepAfter: sweepAfter}, harness.RedisOptions{})
	serve := e.c.StartServe("serve-1")
	work := e.c.StartWork("work-1")
	ctx := context.Background()
	s := harness.NewSender(serve.URL())
	w := harness.NewWorkload("flush", 2)
	// This Redis runs noeviction (its default): no eviction warning at
	// start (StartServe waited for /readyz 200).
	for _, p := range []*harness.Proc{serve, work} {
		if lines := p.LogLines(`"level":"WARN"`, "maxmemory-policy"); len(lines) > 0 {
			t.Errorf("%s warns about maxmemory-policy although Redis runs noeviction: %s", p.Name, lines[0])
		}
	}

	// 8 s of load: FLUSHALL at 3 s, Redis killed at 6 s, back at 8 s.
	load := s.DriveAsync(ctx, w.Stream(harness.Mix{People: 145, WithdrawFrac: 0.4}), rate)
	time.Sleep(3 * time.Second)
	if err := e.c.Redis.FlushAll(ctx); err != nil {
		t.Fatalf("FLUSHALL: %v", err)
	}
	t.Logf("FLUSHALL after %d requests", len(s.Records()))
	time.Sleep(3 * time.Second)
	e.c.Redis.Kill()
	t.Logf("Redis SIGKILLed after %d requests", len(s.Records()))
	time.Sleep(2 * time.Second)
	if err := e.c.Redis.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	<-load
	t.Logf("Redis back (empty); load ended %s later, %d requests", time.Since(back).Round(time.Millisecond), len(s.Records()))

	bound := 2*sweepAfter + slack
	_, err := harness.WaitDone(ctx, e.c.DB(), s.Records(), e.logs, bound-time.Since(back))
	if err != nil {
		t.Fatalf("acknowledged work not done within 2 × sweep_after (%s) + %s slack after Redis came back: %v", 2*sweepAfter, slack, err)
	}
	t.Logf("all acknowledged work done %s after Redis came back (bound %s)", time.Since(back).Round(time.Millisecond), bound)
	// Redis being down is not an outage of the receiver: Postgres still
	// takes every request, so no declared window.
	e.audit(s.Records())
}

// TestRedisEvicting is fault 3: a Redis that evicts keys (allkeys-lru, a
// tight maxmemory, other data competing for it) loses queued tasks.
// Start-up logs a warning and /readyz answers 503 "degraded" unless the
// policy is noeviction, and nothing acknowledged is lost: the sweeper
// finds the lost or orphaned tasks in Postgres and replaces them.
func TestRedisEvicting(t *testing.T) {
	const (
		sweepAfter = 3 * time.Second
		rate       = 30.0
		slack      = 20 * time.Second
	)
	e := newEnv(t, harness.Config{SweepAfter: sweepAfter}, harness.RedisOptions{Policy: "allkeys-lru"})
	serve := e.c.StartServeHealthy("serve-1")
	work := e.c.StartWork("work-1")
	ctx := context.Background()

	// Start-up warns, in both processes.
	for _, p := range []*harness.Proc{serve, work} {
		if err := p.WaitLog(ctx, 10*time.Second, `"level":"WARN"`, "maxmemory-policy"); err != nil {
			t.Errorf("%s: no start-up warning about maxmemory-policy allkeys-lru: %v", p.Name, err)
		}
	}
	// /readyz: 503, degraded.
	code, body, err := serve.Get(ctx, "/readyz")
	if err != nil || code != 503 || !strings.Contains(string(body), "degraded") {
		t.Errorf("/readyz with an evicting Redis: got %d %s (err %v), want 503 naming \"degraded\"", code, strings.TrimSpace(string(body)), err)
	}

	// Tight maxmemory: what Redis uses now plus 2 MiB (room for client
	// buffers and scripts, so that Redis evicts rather than refuses writes), and, during the
	// load, a competing cache writing 2 MB/s of 4 KiB values, so that
	// eviction runs all the time and takes queued tasks with it. The cache
	// stops with the load: then the queue fits again and what eviction
	// lost must be found and redone.
	mem, err := e.c.Redis.Info(ctx, "memory")
	if err != nil {
		t.Fatal(err)
	}
	used, _ := strconv.Atoi(mem["used_memory"])
	limit := used + 2<<20
	if err := e.c.Redis.SetConfig(ctx, "maxmemory", strconv.Itoa(limit)); err != nil {
		t.Fatal(err)
	}
	t.Logf("Redis used_memory %d, maxmemory set to %d (allkeys-lru)", used, limit)
	fillCtx, stopFill := context.WithCancel(ctx)
	var fill sync.WaitGroup
	fill.Add(1)
	go func() {
		defer fill.Done()
		val := make([]byte, 4<<10)
		_, _ = rand.Read(val)
		rc := e.c.Redis.Client()
		for i := 0; fillCtx.Err() == nil; i++ {
			_ = rc.Set(fillCtx, fmt.Sprintf("cache:%d", i), val, 0).Err()
			time.Sleep(2 * time.Millisecond)
		}
	}()

	s := harness.NewSender(serve.URL())
	w := harness.NewWorkload("evict", 3)
	s.Drive(ctx, w.Stream(harness.Mix{People: 220, WithdrawFrac: 0.4}), rate)
	loadEnd := time.Now()
	stopFill()
	fill.Wait()

	stats, err := e.c.Redis.Info(ctx, "stats")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := harness.ReadBacklog(ctx, e.c.DB())
	t.Logf("load done: %d requests; Redis evicted_keys=%s; backlog: %s", len(s.Records()), stats["evicted_keys"], b)
	if stats["evicted_keys"] == "0" {
		t.Errorf("Redis evicted nothing: the test did not exercise eviction (tighten maxmemory)")
	}

	_, err = harness.WaitDone(ctx, e.c.DB(), s.Records(), e.logs, 2*sweepAfter+slack)
	if err != nil {
		t.Errorf("with an evicting Redis, acknowledged work not done within 2 × sweep_after + %s after the load: %v\nwhat Redis holds for the first unprocessed rows: %s",
			slack, err, taskStates(ctx, e, 5))
	} else {
		t.Logf("all acknowledged work done %s after the load", time.Since(loadEnd).Round(time.Millisecond))
	}
	t.Logf("sweeper orphan replacements logged: %d; Redis OOM refusals logged: %d",
		len(work.LogLines("orphaned inbound task ids")), len(work.LogLines("OOM command not allowed"))+len(serve.LogLines("OOM command not allowed")))
	e.audit(s.Records())
}

// taskStates describes, for the first n inbound rows still 'received',
// what Redis holds under their asynq task id (asynq's key layout:
// asynq:{inbound}:t:<task id>, a hash with "msg" and "state", listed in
// asynq:{inbound}:pending while queued): evidence of why they do not run.
func taskStates(ctx context.Context, e *env, n int) string {
	rows, err := e.c.DB().QueryContext(ctx, `SELECT id FROM inbound_events WHERE status = 'received' ORDER BY id LIMIT $1`, n)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	rc := e.c.Redis.Client()
	var out []string
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return err.Error()
		}
		tid := fmt.Sprintf("inbound:%d", id)
		key := "asynq:{inbound}:t:" + tid
		fields, _ := rc.HKeys(ctx, key).Result()
		state, _ := rc.HGet(ctx, key, "state").Result()
		var where []string
		for _, l := range []string{"pending", "active", "scheduled", "retry", "archived"} {
			k := "asynq:{inbound}:" + l
			var hit bool
			if l == "pending" || l == "active" {
				_, perr := rc.LPos(ctx, k, tid, redis.LPosArgs{}).Result()
				hit = perr == nil
			} else {
				_, zerr := rc.ZScore(ctx, k, tid).Result()
				hit = zerr == nil
			}
			if hit {
				where = append(where, l)
			}
		}
		out = append(out, fmt.Sprintf("inbound %d: task hash fields %v state %q, listed in %v", id, fields, state, where))
	}
	return strings.Join(out, "; ")
}
