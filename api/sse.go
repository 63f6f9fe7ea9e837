package api

import (
	"bytes"
	"io"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/shop/api/api/guard"
)

// sse is gqlgen's Server-Sent Events transport, but a body that is not a GraphQL request
// is refused here, with HTTP 400 and an error that does not quote it: gqlgen's transport
// writes such a body to the process log and echoes it in the response, and a malformed
// logIn carries a password.
type sse struct{ transport.SSE }

func (t sse) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	body, err := io.ReadAll(r.Body) // the body limit applies (guard.HTTP)
	if err == nil {
		_, err = decodeParams(body)
	}
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		writeResponse(w, exec.DispatchError(r.Context(), gqlerror.List{undecodable(err)}))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	t.SSE.Do(w, r.WithContext(guard.WithEventRefusal(r.Context())), exec)
}
