package resolvers

import (
	"context"

	"github.com/shop/api/graph"
	"github.com/shop/api/graph/model"
	"github.com/shop/api/loaders"
	"github.com/shop/api/store"
)

// CreateProduct is the resolver for the createProduct field.
func (r *mutationResolver) CreateProduct(ctx context.Context, input model.CreateProductInput) (*model.ProductPayload, error) {
	in := store.NewProduct{Name: input.Name, Price: input.Price, Stock: input.Stock}
	if input.Description != nil {
		in.Description = *input.Description
	}
	if input.LowStockThreshold != nil {
		in.LowStockThreshold = *input.LowStockThreshold
	}
	p, err := r.Store.CreateProduct(ctx, viewer(ctx), in)
	return productPayload(p, err)
}

// UpdateProduct is the resolver for the updateProduct field.
func (r *mutationResolver) UpdateProduct(ctx context.Context, input model.UpdateProductInput) (*model.ProductPayload, error) {
	id := localID(kindProduct, input.ID)
	p, err := r.Store.UpdateProduct(ctx, viewer(ctx), id, store.ProductChanges{
		Name: input.Name, Description: input.Description, Price: input.Price, Stock: input.Stock,
		LowStockThreshold: input.LowStockThreshold, ExpectedStock: input.ExpectedStock,
	})
	loaders.Forget(ctx, id)
	return productPayload(p, err, "id")
}

// Merchant is the batch resolver for the merchant field.
func (r *productResolver) Merchant(ctx context.Context, objs []*store.Product) ([]*store.User, error) {
	lvl := level(ctx)
	merchants, errs := loaders.Users(ctx, keys(objs, func(p *store.Product) int64 { return p.MerchantID }), lvl)
	if lvl == loaders.Whole {
		prefetchPages(ctx, merchants)
	}
	return pointers(merchants, errs)
}

// Edges is the resolver for the edges field.
func (r *productConnectionResolver) Edges(ctx context.Context, obj *store.ProductPage) ([]model.ProductEdge, error) {
	edges := make([]model.ProductEdge, len(obj.Products))
	for i := range obj.Products {
		edges[i] = model.ProductEdge{Cursor: obj.Cursor(i), Node: &obj.Products[i]}
	}
	return edges, nil
}

// Nodes is the resolver for the nodes field.
func (r *productConnectionResolver) Nodes(ctx context.Context, obj *store.ProductPage) ([]store.Product, error) {
	return obj.Products, nil
}

// PageInfo is the resolver for the pageInfo field.
func (r *productConnectionResolver) PageInfo(ctx context.Context, obj *store.ProductPage) (*model.PageInfo, error) {
	return pageInfo(obj.PageInfo, obj.Cursors), nil
}

// TotalCount is the resolver for the totalCount field.
func (r *productConnectionResolver) TotalCount(ctx context.Context, obj *store.ProductPage) (int, error) {
	return loaders.ProductCount(ctx, obj.Filter, level(ctx))
}

// Product is the resolver for the product field.
func (r *queryResolver) Product(ctx context.Context, id string) (*store.Product, error) {
	p, err := loaders.Product(ctx, localID(kindProduct, id), level(ctx))
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// Products is the resolver for the products field.
func (r *queryResolver) Products(ctx context.Context, first *int, after *string, filter *model.ProductFilter, orderBy *model.ProductOrder) (*store.ProductPage, error) {
	var f store.ProductFilter
	if filter != nil {
		f = store.ProductFilter{Search: filter.Search, MinPrice: filter.MinPrice, MaxPrice: filter.MaxPrice, InStock: filter.InStock}
		if filter.MerchantID != nil {
			id := localID(kindUser, *filter.MerchantID)
			if id == 0 {
				return nil, &store.Error{Code: store.CodeInvalid, Message: "merchantId is not a user ID", Field: []string{"filter", "merchantId"}}
			}
			f.MerchantID = &id
		}
	}
	var sort store.ProductSort
	if orderBy != nil {
		sort = store.ProductSort{Field: store.ProductSortField(orderBy.Field), Desc: orderBy.Direction == model.OrderDirectionDesc}
	}
	// The merchants the page's products ask for come with the page where the store can
	// read them in its round trip; Product.merchant then finds them cached.
	merchants := len(asked(ctx, pageNodes(ctx, here(ctx), productPageTypes, productEdgeTypes), productTypes, "merchant")) > 0
	read, err := r.Store.FindProductsWith(ctx, f, sort, pageArgs(first, after), merchants)
	if err != nil {
		return nil, err
	}
	loaders.PrimeUsers(ctx, read.Merchants)
	return read.Page, nil
}

// Product returns graph.ProductResolver implementation.
func (r *Resolver) Product() graph.ProductResolver { return &productResolver{r} }

// ProductConnection returns graph.ProductConnectionResolver implementation.
func (r *Resolver) ProductConnection() graph.ProductConnectionResolver {
	return &productConnectionResolver{r}
}

type (
	productResolver           struct{ *Resolver }
	productConnectionResolver struct{ *Resolver }
)
