package store

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// Paging limits of every list.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// PageArgs asks for First items after the item with cursor After ("" for the start).
type PageArgs struct {
	First int
	After string
}

// PageInfo describes a page of a keyset-paged list.
type PageInfo struct {
	HasNext bool
	HasPrev bool
}

// cursor is the keyset position of an item: its sort key and ID, and the ordering it was
// taken in, so a cursor from one ordering is refused by another.
type cursor struct {
	Order string     `json:"o"`
	ID    int64      `json:"i"`
	Int   *int       `json:"n,omitempty"`
	Str   *string    `json:"s,omitempty"`
	At    *time.Time `json:"t,omitempty"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// checkPage validates paging arguments and decodes the cursor; a bad one is INVALID.
func checkPage(p PageArgs, order string) (*cursor, error) {
	if p.First < 0 || p.First > MaxPageSize {
		return nil, newError(CodeInvalid, fmt.Sprintf("first must be between 0 and %d", MaxPageSize), "first")
	}
	if p.After == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(p.After)
	var c cursor
	if err != nil || json.Unmarshal(b, &c) != nil || c.Order != order || c.ID <= 0 ||
		(order == orderCursor) != (c.At != nil) {
		return nil, newError(CodeInvalid, "after is not a cursor of this list", "after")
	}
	return &c, nil
}

// Cursors are the positions of a page's items, encoded only when asked for: a client that
// reads nodes and not edges never pays for them.
type Cursors []cursor

// Cursor returns the cursor of the page's i-th item.
func (c Cursors) Cursor(i int) string { return c[i].encode() }

// Bounds returns the cursors of the page's first and last items, nil for an empty page.
func (c Cursors) Bounds() (start, end *string) {
	if len(c) == 0 {
		return nil, nil
	}
	s, e := c.Cursor(0), c.Cursor(len(c)-1)
	return &s, &e
}

// buildPage turns rows, read with one row more than first to tell whether a next page exists,
// into a page's items, their cursors and its PageInfo; after is the cursor the page starts
// after.
func buildPage[R, T any](rows []R, first int, after *cursor, convert func(R) T, cursorOf func(R) cursor) ([]T, Cursors, PageInfo) {
	info := PageInfo{HasPrev: after != nil}
	if len(rows) > first {
		rows, info.HasNext = rows[:first], true
	}
	items, cursors := make([]T, len(rows)), make(Cursors, len(rows))
	for i, r := range rows {
		items[i], cursors[i] = convert(r), cursorOf(r)
	}
	return items, cursors, info
}

// pageOf is buildPage for items read as they are returned: the page is rows itself, and
// cursorOf is handed each item where it stays.
func pageOf[T any](rows []T, first int, after *cursor, cursorOf func(*T) cursor) ([]T, Cursors, PageInfo) {
	info := PageInfo{HasPrev: after != nil}
	if len(rows) > first {
		rows, info.HasNext = rows[:first], true
	}
	cursors := make(Cursors, len(rows))
	for i := range rows {
		cursors[i] = cursorOf(&rows[i])
	}
	return rows, cursors, info
}

// groupBy returns rows grouped by parent, each group in the order of rows.
func groupBy[R any](rows []R, parent func(R) int64) map[int64][]R {
	groups := map[int64][]R{}
	for _, r := range rows {
		groups[parent(r)] = append(groups[parent(r)], r)
	}
	return groups
}
