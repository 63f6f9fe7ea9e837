package observe

import (
	"log/slog"
	"strings"
)

// secretKeys are log attribute names whose values never reach a log.
var secretKeys = []string{"password", "token", "secret", "authorization", "cookie"}

// RedactSecrets is a slog ReplaceAttr that blanks attributes named like a secret (password,
// token, secret, authorization, cookie), wherever a caller logs one by mistake.
func RedactSecrets(_ []string, a slog.Attr) slog.Attr {
	k := strings.ToLower(a.Key)
	for _, s := range secretKeys {
		if strings.Contains(k, s) {
			return slog.String(a.Key, "[REDACTED]")
		}
	}
	return a
}
