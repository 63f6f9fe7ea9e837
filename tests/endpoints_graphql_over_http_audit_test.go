package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shop/api/store/storetest"
)

// auditResult is one of graphql-http's server audits.
type auditResult struct {
	ID, Name, Status, Reason string
}

// TestGraphQLOverHTTPAudit runs graphql-http's conformance audit of the GraphQL over HTTP
// spec against the real server: every MUST and every SHOULD passes; MAY results are reported.
func TestGraphQLOverHTTPAudit(t *testing.T) {
	t.Parallel()
	storetest.RequireCommand(t, "node")
	_, err := os.Stat(filepath.Join("testdata", "node", "node_modules", "graphql-http"))
	storetest.Require(t, err == nil, "graphql-http is not installed: run npm ci --prefix tests/testdata/node")
	env := embedded(t, config{})

	out, err := exec.CommandContext(t.Context(), "node", filepath.Join("testdata", "node", "audit.mjs"), env.srv.URL+"/graphql").Output()
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, out)
	}
	var results []auditResult
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("audit output: %v\n%s", err, out)
	}
	count := map[string]map[string]int{}
	for _, r := range results {
		level, _, _ := strings.Cut(r.Name, " ")
		if count[level] == nil {
			count[level] = map[string]int{}
		}
		count[level][r.Status]++
		switch {
		case r.Status == "ok":
		case level == "MUST", level == "SHOULD":
			t.Errorf("%s %s: %s", r.ID, r.Name, r.Reason)
		default:
			t.Logf("%s %s: %s", r.ID, r.Name, r.Reason)
		}
	}
	for _, level := range []string{"MUST", "SHOULD", "MAY"} {
		c := count[level]
		t.Logf("%s audits: %d met, %d not met", level, c["ok"], len(results)-c["ok"]-otherLevels(count, level))
	}
}

func otherLevels(count map[string]map[string]int, level string) int {
	n := 0
	for l, c := range count {
		if l == level {
			continue
		}
		for _, v := range c {
			n += v
		}
	}
	return n
}
