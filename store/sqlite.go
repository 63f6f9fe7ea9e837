package store

import (
	"database/sql/driver"
	"strings"
	"sync"

	sqlitedriver "github.com/glebarez/go-sqlite"
)

// registerSQLiteFunctions replaces the embedded SQLite's LOWER, which folds only ASCII
// letters, with Go's Unicode lower-casing, so that product search is case-insensitive in
// every alphabet as it is on PostgreSQL. The driver keeps functions in a process-wide
// registry for the connections it opens later, hence once per process.
var registerSQLiteFunctions = sync.OnceValue(func() error {
	return sqlitedriver.RegisterDeterministicScalarFunction("lower", 1,
		func(_ *sqlitedriver.FunctionContext, args []driver.Value) (driver.Value, error) {
			switch v := args[0].(type) {
			case string:
				return strings.ToLower(v), nil
			case []byte:
				return strings.ToLower(string(v)), nil
			default: // NULL and numbers have no case
				return v, nil
			}
		})
})
