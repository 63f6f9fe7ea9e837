package redisconn

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestParseSentinelURL(t *testing.T) {
	type want struct {
		master                     string
		sentinels                  []string
		db                         int
		username, password         string
		sentinelUser, sentinelPass string
		poolSize                   int
	}
	tests := []struct {
		url  string
		want want
	}{
		{"redis-sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/mymaster",
			want{master: "mymaster", sentinels: []string{"127.0.0.1:26379", "127.0.0.1:26380", "127.0.0.1:26381"}}},
		{"redis-sentinel://:s3cret@s1,s2:26390/shop/2",
			want{master: "shop", sentinels: []string{"s1:26379", "s2:26390"}, db: 2, password: "s3cret"}},
		{"redis-sentinel://app:p%40ss%2Fw@[::1]:26379,[::1]/shop?sentinel_password=sp&pool_size=7",
			want{master: "shop", sentinels: []string{"[::1]:26379", "[::1]:26379"}, username: "app", password: "p@ss/w",
				sentinelPass: "sp", poolSize: 7}},
		{"redis-sentinel://s1/m/?sentinel_username=watch&sentinel_password=sp",
			want{master: "m", sentinels: []string{"s1:26379"}, sentinelUser: "watch", sentinelPass: "sp"}},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			o, err := parseSentinelURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			got := want{master: o.MasterName, sentinels: o.SentinelAddrs, db: o.DB, username: o.Username, password: o.Password,
				sentinelUser: o.SentinelUsername, sentinelPass: o.SentinelPassword, poolSize: o.PoolSize}
			if !slices.Equal(got.sentinels, tt.want.sentinels) {
				t.Errorf("sentinels %v, want %v", got.sentinels, tt.want.sentinels)
			}
			got.sentinels = tt.want.sentinels
			if got.master != tt.want.master || got.db != tt.want.db || got.username != tt.want.username ||
				got.password != tt.want.password || got.sentinelUser != tt.want.sentinelUser ||
				got.sentinelPass != tt.want.sentinelPass || got.poolSize != tt.want.poolSize {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseSentinelURLRefuses(t *testing.T) {
	tests := []struct{ url, says string }{
		{"redis-sentinel://127.0.0.1:26379", "name the master"},
		{"redis-sentinel://127.0.0.1:26379/", "name the master"},
		{"redis-sentinel://127.0.0.1:26379/m/0/1", "name the master"},
		{"redis-sentinel://127.0.0.1:26379/m/x", `database number "x"`},
		{"redis-sentinel://127.0.0.1:26379/m/-1", `database number "-1"`},
		{"redis-sentinel://a:1,,b:2/m", "empty sentinel address"},
		{"redis-sentinel:///m", "empty sentinel address"},
		{"redis-sentinel://a:0/m", `sentinel address "a:0"`},
		{"redis-sentinel://a:port/m", `sentinel address "a:port"`},
		{"redis-sentinel://::1/m", `sentinel address "::1"`},
		{"redis-sentinel://a/m?master_name=x", `option "master_name"`},
		{"redis-sentinel://a/m?addr=b:1", `option "addr"`},
		{"redis-sentinel://a/m?password=x", `option "password"`},
		{"redis-sentinel://a/m?db=1", `option "db"`},
		{"redis-sentinel://a/m?no_such_option=1", "unexpected option: no_such_option"},
		{"redis://a/m", "want a redis-sentinel:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := parseSentinelURL(tt.url)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("error %v, want one saying %q", err, tt.says)
			}
		})
	}
}

// TestOpenSentinelURL: a redis-sentinel:// REDIS_URL gives a failover client with the
// service's deadlines, for the command client and for NewClient alike; a malformed one is
// refused at start, naming REDIS_URL and not echoing its password.
func TestOpenSentinelURL(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	c, err := Open(Config{URL: "redis-sentinel://127.0.0.1:1,127.0.0.1:2/mymaster/3"}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := c.UniversalClient.(*redis.Client).Options()
	sub := c.NewClient()
	defer sub.Close()
	for _, o := range []struct {
		name                 string
		addr                 string
		db                   int
		dial, read, poolWait time.Duration
		retries              int
	}{
		{"command client", cmd.Addr, cmd.DB, cmd.DialTimeout, cmd.ReadTimeout, cmd.PoolTimeout, cmd.MaxRetries},
		{"NewClient", sub.Options().Addr, sub.Options().DB, sub.Options().DialTimeout, sub.Options().ReadTimeout, sub.Options().PoolTimeout, sub.Options().MaxRetries},
	} {
		// go-redis names every failover client's address "FailoverClient".
		if o.addr != "FailoverClient" || o.db != 3 || o.dial != redisDialTimeout || o.read != redisIOTimeout ||
			o.poolWait != redisPoolTimeout || o.retries != 1 {
			t.Errorf("%s: %+v", o.name, o)
		}
	}

	_, err = Open(Config{URL: "redis-sentinel://:hunter2@127.0.0.1:26379"}, log)
	if err == nil || !strings.HasPrefix(err.Error(), "REDIS_URL: ") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("malformed sentinel URL: %v", err)
	}
}
