package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// GroupInbox commits concurrent webhook requests together (group commit):
// requests arriving within Wait of each other, up to Max, are written by
// one multi-row INSERT, one commit and one WAL flush. Each caller is
// answered only once its own row is durable. Flushers commits run at once,
// so a batch forms while the previous one is being flushed.
//
// Guarantees are those of Store.InsertInbound: exactly one of several
// identical deliveries (same source and dedup key, in one batch or not) is
// new, the others are duplicates with its id. If a batch cannot be written
// as a whole (a row Postgres refuses), each of its requests is written
// alone, so one bad request never fails the others.
type GroupInbox struct {
	Store *Store
	// Wait is how long the first request of a batch waits for others
	// (default 2ms).
	Wait time.Duration
	// Max is the most requests one commit carries (default 256).
	Max int
	// Flushers is how many commits may be in flight at once (default 4).
	Flushers int

	once sync.Once
	reqs chan *pendingInsert
}

type pendingInsert struct {
	ctx  context.Context
	in   Inbound
	done chan insertResult
}

type insertResult struct {
	id  int64
	dup bool
	err error
}

// Ping checks that Postgres answers.
func (g *GroupInbox) Ping(ctx context.Context) error { return g.Store.Ping(ctx) }

// InsertInbound queues in for the next group commit and waits for it (see
// Store.InsertInbound for the results). If ctx ends first the row may still
// be committed; the caller gets ctx's error.
func (g *GroupInbox) InsertInbound(ctx context.Context, in Inbound) (int64, bool, error) {
	g.once.Do(g.start)
	p := &pendingInsert{ctx: ctx, in: in, done: make(chan insertResult, 1)}
	select {
	case g.reqs <- p:
	case <-ctx.Done():
		return 0, false, ctx.Err()
	}
	select {
	case r := <-p.done:
		return r.id, r.dup, r.err
	case <-ctx.Done():
		return 0, false, ctx.Err()
	}
}

func (g *GroupInbox) start() {
	if g.Wait <= 0 {
		g.Wait = 2 * time.Millisecond
	}
	if g.Max <= 0 {
		g.Max = 256
	}
	if g.Flushers <= 0 {
		g.Flushers = 4
	}
	g.reqs = make(chan *pendingInsert, g.Max*g.Flushers)
	for range g.Flushers {
		go g.flusher()
	}
}

// flusher gathers a batch (the first request, then whatever arrives within
// Wait, up to Max) and commits it, forever.
func (g *GroupInbox) flusher() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for first := range g.reqs {
		batch := []*pendingInsert{first}
		timer.Reset(g.Wait)
	gather:
		for len(batch) < g.Max {
			select {
			case p := <-g.reqs:
				batch = append(batch, p)
			case <-timer.C:
				break gather
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		g.commit(batch)
	}
}

// commit writes batch in one statement, or each request alone if the
// statement fails.
func (g *GroupInbox) commit(batch []*pendingInsert) {
	if len(batch) > 1 {
		res, err := g.Store.insertInboundBatch(context.Background(), batch)
		if err == nil {
			for i, p := range batch {
				p.done <- res[i]
			}
			return
		}
	}
	for _, p := range batch {
		id, dup, err := g.Store.InsertInbound(context.WithoutCancel(p.ctx), p.in)
		p.done <- insertResult{id, dup, err}
	}
}

// insertInboundBatch inserts every request of batch with one INSERT … SELECT
// FROM unnest(…) ON CONFLICT DO NOTHING, then finds the ids of the
// duplicates with one SELECT, in one transaction: if anything fails
// nothing is stored, and each request is tried again alone.
func (s *Store) insertInboundBatch(ctx context.Context, batch []*pendingInsert) (out []insertResult, err error) {
	tx, err := s.DB.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: insert inbound batch: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		} else if err = tx.Commit(); err != nil {
			err = fmt.Errorf("store: insert inbound batch: %w", err)
		}
	}()
	n := len(batch)
	src, kind, dedup, method, path, query, headers := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	body, sums, traces := make([][]byte, n), make([][]byte, n), make([]string, n)
	for i, p := range batch {
		in := p.in
		if len(in.Headers) == 0 {
			in.Headers = json.RawMessage(`{}`)
		}
		sum := sha256.Sum256(in.Body)
		src[i], kind[i], dedup[i], method[i], path[i], query[i], headers[i] = in.Source, in.Kind, in.DedupKey, in.Method, in.Path, in.Query, string(in.Headers)
		body[i], sums[i], traces[i] = in.Body, sum[:], in.TraceParent
		if body[i] == nil {
			body[i] = []byte{}
		}
	}
	type key struct{ source, dedup string }
	ids := map[key]int64{}
	scan := func(rows *sqlx.Rows, into map[key]int64) error {
		defer rows.Close()
		for rows.Next() {
			var id int64
			var k key
			if err := rows.Scan(&id, &k.source, &k.dedup); err != nil {
				return err
			}
			into[k] = id
		}
		return rows.Err()
	}
	rows, err := tx.QueryxContext(ctx, `
		INSERT INTO inbound_events (source, kind, dedup_key, method, path, query, headers, body, body_sha256, traceparent)
		SELECT s, k, d, m, p, q, h::jsonb, b, x, nullif(tp, '')
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bytea[], $9::bytea[], $10::text[])
		  AS t(s, k, d, m, p, q, h, b, x, tp)
		ON CONFLICT (source, dedup_key) DO NOTHING
		RETURNING id, source, dedup_key`,
		pq.Array(src), pq.Array(kind), pq.Array(dedup), pq.Array(method), pq.Array(path), pq.Array(query), pq.Array(headers),
		pq.ByteaArray(body), pq.ByteaArray(sums), pq.Array(traces))
	if err != nil {
		return nil, fmt.Errorf("store: insert inbound batch: %w", err)
	}
	if err := scan(rows, ids); err != nil {
		return nil, fmt.Errorf("store: insert inbound batch: %w", err)
	}
	fresh := make(map[key]bool, len(ids))
	for k := range ids {
		fresh[k] = true
	}
	var missSrc, missDedup []string
	for i := range batch {
		if _, ok := ids[key{src[i], dedup[i]}]; !ok {
			missSrc, missDedup = append(missSrc, src[i]), append(missDedup, dedup[i])
		}
	}
	if len(missSrc) > 0 {
		rows, err := tx.QueryxContext(ctx, `SELECT e.id, e.source, e.dedup_key FROM inbound_events e
			JOIN unnest($1::text[], $2::text[]) AS t(s, d) ON e.source = t.s AND e.dedup_key = t.d`, pq.Array(missSrc), pq.Array(missDedup))
		if err != nil {
			return nil, fmt.Errorf("store: find duplicate inbound: %w", err)
		}
		if err := scan(rows, ids); err != nil {
			return nil, fmt.Errorf("store: find duplicate inbound: %w", err)
		}
	}
	out = make([]insertResult, n)
	for i := range batch {
		k := key{src[i], dedup[i]}
		id, ok := ids[k]
		if !ok {
			return nil, fmt.Errorf("store: inbound (%s) neither inserted nor found", src[i])
		}
		// The first request of a key new in this batch is the new one.
		out[i] = insertResult{id: id, dup: !fresh[k]}
		fresh[k] = false
	}
	return out, nil
}
