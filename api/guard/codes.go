package guard

// Top-level error codes of the API contract (extensions.code).
const (
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeForbidden       = "FORBIDDEN"
	CodeNotFound        = "NOT_FOUND"
	CodeBadUserInput    = "BAD_USER_INPUT"
	CodeInternal        = "INTERNAL_SERVER_ERROR"
	// CodeComplexityLimit refuses an operation for its shape: too deep, too costly, too
	// many aliases or too many tokens.
	CodeComplexityLimit = "COMPLEXITY_LIMIT_EXCEEDED"
	// CodeRateLimited refuses an operation whose caller spent their budget.
	CodeRateLimited = "RATE_LIMITED"
	// CodePersistedQueryNotFound answers a persisted query id the server does not know.
	CodePersistedQueryNotFound = "PERSISTED_QUERY_NOT_FOUND"
	// CodePaymentProviderUnavailable answers payOrder while the payment provider cannot be
	// reached; nothing was done and the request may be sent again.
	CodePaymentProviderUnavailable = "PAYMENT_PROVIDER_UNAVAILABLE"
)
