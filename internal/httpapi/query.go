package httpapi

import (
	"net/url"
	"strings"
)

// MaxQueryParams bounds the parameters parsed from one query string.
const MaxQueryParams = 32

// parseQuery parses a query string the way BigDL's clients write it: they
// do not URL-encode values and the documented curl examples separate pairs
// with "&&". Empty pairs are skipped. A value is percent-decoded when it is
// valid percent-encoding and kept as written otherwise, and '+' stays '+'
// (BigDL clients never encode a space as '+', and tokens may contain '+').
// The first occurrence of a name wins. It never fails: a pair without '='
// is a name with an empty value.
func parseQuery(raw string) map[string]string {
	q := make(map[string]string, 4)
	for n := 0; raw != "" && n < MaxQueryParams; {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		n++
		name, value, _ := strings.Cut(pair, "=")
		name, value = unescape(name), unescape(value)
		if _, dup := q[name]; !dup {
			q[name] = value
		}
	}
	return q
}

func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	// PathUnescape, unlike QueryUnescape, leaves '+' alone.
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// cleanPath collapses runs of '/' into one, so that "//dataKey/x", which
// BigDL's Scala client sends, is served as "/dataKey/x" without the redirect
// that http.ServeMux would answer.
func cleanPath(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}
