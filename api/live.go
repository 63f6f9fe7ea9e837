package api

import "github.com/99designs/gqlgen/graphql/handler"

// addLiveTransports adds the transports that carry subscriptions.
func (s *Service) addLiveTransports(srv *handler.Server) {}
