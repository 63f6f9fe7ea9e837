package tests

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricValue returns the sum of every sample of the named metric on /metrics whose labels
// contain all of labels (e.g. `code="BAD_USER_INPUT"`).
func metricValue(t *testing.T, env *testEnv, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(env.srv.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
lines:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue lines
			}
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

func httptestServer(t *testing.T, svc *service) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(func() { srv.Close(); svc.Close() })
	return srv
}

func TestActiveSubscriptionsGauge(t *testing.T) {
	env := embedded(t, config{})
	customer := env.signUp("CUSTOMER")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, env.srv.URL+"/graphql",
		strings.NewReader(`{"query":"subscription { myOrderEvents { status } }"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+customer.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	waitFor(t, 10*time.Second, "the subscription to count", func() bool {
		return metricValue(t, env, "shop_graphql_active_subscriptions") == 1
	})
	cancel()
	waitFor(t, 10*time.Second, "the ended subscription to stop counting", func() bool {
		return metricValue(t, env, "shop_graphql_active_subscriptions") == 0
	})
}
