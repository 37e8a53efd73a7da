package store

import (
	"context"
	"database/sql"

	"github.com/jmoiron/sqlx"
)

// preparedTx runs a transaction's statements as named prepared statements,
// each prepared once per transaction on first use (one Parse, then one
// Bind/Execute round trip per call instead of lib/pq's two, and no
// re-parsing or re-planning): a batch reconciling a hundred webhooks runs
// each of its statements a hundred times.
type preparedTx struct {
	tx    *sqlx.Tx
	stmts map[string]*sqlx.Stmt
}

func (p *preparedTx) stmt(ctx context.Context, q string) (*sqlx.Stmt, error) {
	if s, ok := p.stmts[q]; ok {
		return s, nil
	}
	s, err := p.tx.PreparexContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if p.stmts == nil {
		p.stmts = map[string]*sqlx.Stmt{}
	}
	p.stmts[q] = s
	return s, nil
}

// ExecContext is sqlx.Tx.ExecContext through a prepared statement.
func (p *preparedTx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	s, err := p.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

// GetContext is sqlx.Tx.GetContext through a prepared statement.
func (p *preparedTx) GetContext(ctx context.Context, dest any, q string, args ...any) error {
	s, err := p.stmt(ctx, q)
	if err != nil {
		return err
	}
	return s.GetContext(ctx, dest, args...)
}

// SelectContext is sqlx.Tx.SelectContext through a prepared statement.
func (p *preparedTx) SelectContext(ctx context.Context, dest any, q string, args ...any) error {
	s, err := p.stmt(ctx, q)
	if err != nil {
		return err
	}
	return s.SelectContext(ctx, dest, args...)
}

// QueryRowxContext is sqlx.Tx.QueryRowxContext through a prepared statement.
func (p *preparedTx) QueryRowxContext(ctx context.Context, q string, args ...any) *sqlx.Row {
	s, err := p.stmt(ctx, q)
	if err != nil {
		// sqlx.Row cannot carry err; run unprepared, the statement fails
		// too (a failed Prepare aborts the transaction: Scan then says so)
		// and the transaction is rolled back.
		return p.tx.QueryRowxContext(ctx, q, args...)
	}
	return s.QueryRowxContext(ctx, args...)
}

// QueryContext is sqlx.Tx.QueryContext through a prepared statement.
func (p *preparedTx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	s, err := p.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// QueryxContext is sqlx.Tx.QueryxContext through a prepared statement.
func (p *preparedTx) QueryxContext(ctx context.Context, q string, args ...any) (*sqlx.Rows, error) {
	s, err := p.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.QueryxContext(ctx, args...)
}
