package api

import "net/http"

// protect applies the HTTP-level protections of the GraphQL endpoint.
func (s *Service) protect(next http.Handler) http.Handler { return next }
