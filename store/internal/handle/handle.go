// Package handle lets store/storetest reach a store's gorm handle, which no package outside
// store/ may see: only packages under store/ can import this one.
package handle

import "gorm.io/gorm"

// Handle is a store's database handle, opaque outside store/.
type Handle struct{ db *gorm.DB }

// New wraps db.
func New(db *gorm.DB) Handle { return Handle{db: db} }

// DB returns the handle's gorm handle.
func DB(h Handle) *gorm.DB { return h.db }
