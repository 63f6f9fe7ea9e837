package redisconn

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// sentinelScheme is the URL scheme of a Redis reached through Sentinel.
const sentinelScheme = "redis-sentinel"

// defaultSentinelPort is Sentinel's own port, taken when an address names none.
const defaultSentinelPort = "26379"

// parseSentinelURL reads a redis-sentinel:// URL into go-redis's failover options:
//
//	redis-sentinel://[[username]:password@]host[:port][,host[:port]...]/master[/db][?option=value&...]
//
// The hosts are Sentinels (port 26379 when omitted), master is the name they monitor, db the
// database number (0 when omitted). The user and password are those of the Redis servers, as
// in a redis:// URL; sentinel_username and sentinel_password are those of Sentinels that
// require AUTH. Any other option is go-redis's, as in redis.ParseFailoverURL (pool_size…).
//
// go-redis's own failover URL (redis://sentinel?master_name=…&addr=…) is not taken: it
// spells the Sentinels' credentials where a redis:// URL has the server's, so the same URL
// would mean two things.
func parseSentinelURL(raw string) (*redis.FailoverOptions, error) {
	rest, ok := strings.CutPrefix(raw, sentinelScheme+"://")
	if !ok {
		return nil, fmt.Errorf("want a %s:// URL", sentinelScheme)
	}
	// url.Parse takes one host: the list is cut out first (a list of IPv6 literals would
	// not even parse) and replaced by a placeholder.
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	userinfo := ""
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		userinfo, authority = authority[:at+1], authority[at+1:]
	}
	u, err := url.Parse("redis://" + userinfo + "sentinels" + tail)
	if err != nil {
		return nil, fmt.Errorf("%s URL: %w", sentinelScheme, errors.Unwrap(err))
	}
	var addrs []string
	for _, a := range strings.Split(authority, ",") {
		addr, err := sentinelAddr(strings.TrimSpace(a))
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, addr)
	}

	path := strings.Split(strings.Trim(u.Path, "/"), "/")
	if path[0] == "" || len(path) > 2 {
		return nil, fmt.Errorf("name the master after the Sentinels, as in %s://127.0.0.1:26379/mymaster (or /mymaster/0 with a database number)", sentinelScheme)
	}
	db := "0"
	if len(path) == 2 {
		if n, err := strconv.Atoi(path[1]); err != nil || n < 0 {
			return nil, fmt.Errorf("database number %q is not a whole number ≥ 0", path[1])
		}
		db = path[1]
	}

	q := u.Query()
	for _, reserved := range []string{"master_name", "addr", "username", "password", "db"} {
		if q.Has(reserved) {
			return nil, fmt.Errorf("option %q: the master, Sentinels, credentials and database are spelled in the URL itself", reserved)
		}
	}
	q.Set("master_name", path[0])
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	if u.User != nil {
		if name := u.User.Username(); name != "" {
			q.Set("username", name)
		}
		if pw, ok := u.User.Password(); ok {
			q.Set("password", pw)
		}
	}
	// go-redis takes the Sentinels' credentials from the URL's user info.
	var sentinelUser *url.Userinfo
	if name, pw := q.Get("sentinel_username"), q.Get("sentinel_password"); name != "" || pw != "" {
		sentinelUser = url.UserPassword(name, pw)
	}
	q.Del("sentinel_username")
	q.Del("sentinel_password")

	failoverURL := url.URL{Scheme: "redis", User: sentinelUser, Host: addrs[0], Path: "/" + db, RawQuery: q.Encode()}
	opts, err := redis.ParseFailoverURL(failoverURL.String())
	if err != nil {
		return nil, fmt.Errorf("%s URL: %w", sentinelScheme, err)
	}
	return opts, nil
}

// sentinelAddr returns a as host:port, with Sentinel's port when a names none.
func sentinelAddr(a string) (string, error) {
	if a == "" {
		return "", errors.New("empty sentinel address in the list (want host:port,host:port,…)")
	}
	if host, port, err := net.SplitHostPort(a); err == nil {
		if n, err := strconv.Atoi(port); host == "" || err != nil || n <= 0 || n > 65535 {
			return "", fmt.Errorf("sentinel address %q: want host:port", a)
		}
		return net.JoinHostPort(host, port), nil
	}
	host := a
	if strings.HasPrefix(a, "[") && strings.HasSuffix(a, "]") {
		host = a[1 : len(a)-1] // an IPv6 literal without a port
	}
	if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && host == a) {
		return "", fmt.Errorf("sentinel address %q: want host:port (IPv6 in brackets)", a)
	}
	return net.JoinHostPort(host, defaultSentinelPort), nil
}
