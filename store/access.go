package store

// The authorization rules of the shop, in one place. Objects a viewer may not see are
// reported as NOT_FOUND, exactly like unknown IDs; objects they see but may not change are
// FORBIDDEN.

// CanSeePrivate reports whether v may see user u's email and orders.
func CanSeePrivate(v Viewer, userID int64) bool {
	return !v.Anonymous() && (v.UserID == userID || v.Role == RoleAdmin)
}

// CanSeeOrder reports whether v may see an order placed by customerID whose lines belong to
// merchantIDs: its customer, an ADMIN, or a MERCHANT with a product in it.
func CanSeeOrder(v Viewer, customerID int64, merchantIDs []int64) bool {
	switch {
	case v.Anonymous():
		return false
	case v.Role == RoleAdmin, v.UserID == customerID:
		return true
	case v.Role == RoleMerchant:
		for _, m := range merchantIDs {
			if m == v.UserID {
				return true
			}
		}
	}
	return false
}

// CanManageOrder reports whether v may change an order's status: an ADMIN, or a MERCHANT
// owning every product in it.
func CanManageOrder(v Viewer, merchantIDs []int64) bool {
	switch {
	case v.Anonymous():
		return false
	case v.Role == RoleAdmin:
		return true
	case v.Role == RoleMerchant && len(merchantIDs) > 0:
		for _, m := range merchantIDs {
			if m != v.UserID {
				return false
			}
		}
		return true
	}
	return false
}

// CanCancelOrder reports whether v may cancel an order: its customer, or whoever may manage it.
func CanCancelOrder(v Viewer, customerID int64, merchantIDs []int64) bool {
	return (!v.Anonymous() && v.UserID == customerID) || CanManageOrder(v, merchantIDs)
}

// CanCreateProduct reports whether v may sell products.
func CanCreateProduct(v Viewer) bool { return v.Role == RoleMerchant && !v.Anonymous() }

// CanEditProduct reports whether v may change a product sold by merchantID.
func CanEditProduct(v Viewer, merchantID int64) bool {
	return !v.Anonymous() && (v.Role == RoleAdmin || (v.Role == RoleMerchant && v.UserID == merchantID))
}

// checkSignedIn returns UNAUTHENTICATED for anonymous viewers.
func checkSignedIn(v Viewer) error {
	if v.Anonymous() {
		return newError(CodeUnauthenticated, "sign in first")
	}
	return nil
}
