package store

import "context"

// ExecForTest runs a statement on s's database under ctx, for the tests in store_test.
func ExecForTest(ctx context.Context, s *Store, sql string) error {
	return s.db.WithContext(ctx).Exec(sql).Error
}
