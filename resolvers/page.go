package resolvers

import (
	"github.com/shop/api/graph/model"
	"github.com/shop/api/store"
)

// pageArgs turns a connection's arguments into the store's; the schema defaults first to 20.
func pageArgs(first *int, after *string) store.PageArgs {
	p := store.PageArgs{First: store.DefaultPageSize}
	if first != nil {
		p.First = *first
	}
	if after != nil {
		p.After = *after
	}
	return p
}

func pageInfo(info store.PageInfo, cursors store.Cursors) *model.PageInfo {
	p := &model.PageInfo{HasNextPage: info.HasNext, HasPreviousPage: info.HasPrev}
	p.StartCursor, p.EndCursor = cursors.Bounds()
	return p
}
