package store

import (
	"context"
	"fmt"
	"time"
)

// SetLockTimeout bounds how long tx waits for any lock from now on
// (Postgres lock_timeout; the statement then fails). For tests.
func (tx *Tx) SetLockTimeout(ctx context.Context, d time.Duration) error {
	_, err := tx.sq.tx.ExecContext(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = '%dms'`, d.Milliseconds()))
	return err
}
