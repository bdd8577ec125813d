package httpapi

import (
	"fmt"
	"maps"
	"strings"
	"testing"
)

func TestParseQuery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
		want map[string]string
	}{
		{"empty", "", map[string]string{}},
		{"only separators", "&&&", map[string]string{}},
		{"plain", "user=alice&token=t0k", map[string]string{"user": "alice", "token": "t0k"}},
		{"double ampersand as in BigDL docs", "a=1&&b=2", map[string]string{"a": "1", "b": "2"}},
		{"leading and trailing ampersand", "&a=1&", map[string]string{"a": "1"}},
		{"plus stays plus", "token=a+b", map[string]string{"token": "a+b"}},
		{"unencoded base64 token", "token=a+b/c==", map[string]string{"token": "a+b/c=="}},
		{"equals sign in value", "k=x=y&z=1", map[string]string{"k": "x=y", "z": "1"}},
		{"percent-encoded value decoded", "k=a%2Bb%2Fc%3D%3D", map[string]string{"k": "a+b/c=="}},
		{"percent-encoded space", "k=hello%20world", map[string]string{"k": "hello world"}},
		{"percent-encoded ampersand", "k=a%26b=c&d=1", map[string]string{"k": "a&b=c", "d": "1"}},
		{"plus kept beside decoded escape", "k=a+b%20c", map[string]string{"k": "a+b c"}},
		{"percent-encoded name", "us%65r=alice", map[string]string{"user": "alice"}},
		{"invalid escape kept raw", "k=100%", map[string]string{"k": "100%"}},
		{"non-hex escape kept raw", "k=%zz+1", map[string]string{"k": "%zz+1"}},
		{"truncated escape kept raw", "k=ab%4", map[string]string{"k": "ab%4"}},
		{"one bad escape keeps the whole value raw", "k=%41%zz", map[string]string{"k": "%41%zz"}},
		{"duplicate name, first wins", "a=1&a=2&a=3", map[string]string{"a": "1"}},
		{"duplicate after encoding, first wins", "a=1&%61=2", map[string]string{"a": "1"}},
		{"pair without equals", "flag&a=1", map[string]string{"flag": "", "a": "1"}},
		{"empty value", "a=&b=2", map[string]string{"a": "", "b": "2"}},
		{"empty name", "=v&a=1", map[string]string{"": "v", "a": "1"}},
		{"semicolon is not a separator", "a=1;b=2", map[string]string{"a": "1;b=2"}},
		{"bigdl getDataKey query", "user=alice&&token=s3cret+/x==&&keyName=pk&&dataKeyName=dk",
			map[string]string{"user": "alice", "token": "s3cret+/x==", "keyName": "pk", "dataKeyName": "dk"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := parseQuery(tt.raw); !maps.Equal(got, tt.want) {
				t.Errorf("parseQuery(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestParseQueryBound(t *testing.T) {
	t.Parallel()
	pairs := func(from, to int) string {
		var s []string
		for i := from; i < to; i++ {
			s = append(s, fmt.Sprintf("p%d=%d", i, i))
		}
		return strings.Join(s, "&")
	}
	tests := []struct {
		name    string
		raw     string
		wantLen int
		last    string // the last parameter kept
		dropped string // a parameter beyond the bound
	}{
		{"exactly MaxQueryParams", pairs(0, MaxQueryParams), MaxQueryParams, fmt.Sprintf("p%d", MaxQueryParams-1), ""},
		{"more than MaxQueryParams", pairs(0, 3*MaxQueryParams), MaxQueryParams, fmt.Sprintf("p%d", MaxQueryParams-1), fmt.Sprintf("p%d", MaxQueryParams)},
		{"empty pairs do not count", strings.Repeat("&", 1000) + pairs(0, MaxQueryParams), MaxQueryParams, fmt.Sprintf("p%d", MaxQueryParams-1), ""},
		{"double ampersands do not count", strings.ReplaceAll(pairs(0, MaxQueryParams+1), "&", "&&"), MaxQueryParams, fmt.Sprintf("p%d", MaxQueryParams-1), fmt.Sprintf("p%d", MaxQueryParams)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := parseQuery(tt.raw)
			if len(got) != tt.wantLen {
				t.Errorf("parseQuery returned %d parameters, want %d", len(got), tt.wantLen)
			}
			if _, ok := got[tt.last]; !ok {
				t.Errorf("parameter %s missing", tt.last)
			}
			if _, ok := got[tt.dropped]; tt.dropped != "" && ok {
				t.Errorf("parameter %s beyond the bound was kept", tt.dropped)
			}
		})
	}
}

func TestCleanPath(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"BigDL Scala client prefix", "//dataKey/x", "/dataKey/x"},
		{"only slashes", "///", "/"},
		{"two slashes", "//", "/"},
		{"runs in the middle", "/a//b///c", "/a/b/c"},
		{"trailing run", "/dataKey//", "/dataKey/"},
		{"relative with run", "a//b", "a/b"},
		{"clean path unchanged", "/dataKey/x", "/dataKey/x"},
		{"root unchanged", "/", "/"},
		{"empty unchanged", "", ""},
		{"dots untouched", "//a/../b/./c", "/a/../b/./c"},
		{"encoded slash untouched", "/a%2F%2Fb", "/a%2F%2Fb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := cleanPath(tt.in); got != tt.want {
				t.Errorf("cleanPath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, seed := range []string{
		"", "&&&", "user=alice&&token=a+b/c==", "k=%41%zz", "a=1&a=2", "flag", "=v",
		"k=a%26b=c&d=1", strings.Repeat("a=1&", 40), "%", "%%=%%",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q := parseQuery(raw)
		if len(q) > MaxQueryParams {
			t.Fatalf("parseQuery returned %d parameters, more than %d", len(q), MaxQueryParams)
		}
		if !maps.Equal(q, parseQuery(raw)) {
			t.Fatal("parseQuery is not deterministic")
		}
		if strings.Contains(raw, "%") {
			return
		}
		// Without escapes, names and values are pieces of the input.
		for k, v := range q {
			if strings.ContainsAny(k, "&=") || strings.Contains(v, "&") {
				t.Fatalf("parseQuery(%q): pair %q=%q spans a separator", raw, k, v)
			}
			if !strings.Contains(raw, k) || !strings.Contains(raw, v) {
				t.Fatalf("parseQuery(%q): pair %q=%q not in the input", raw, k, v)
			}
		}
	})
}

func FuzzCleanPath(f *testing.F) {
	for _, seed := range []string{"", "/", "//", "///", "//dataKey/x", "/a//b///c", "a//", "/%2F/"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := cleanPath(p)
		if strings.Contains(got, "//") {
			t.Fatalf("cleanPath(%q) = %q contains //", p, got)
		}
		if !strings.Contains(p, "//") && got != p {
			t.Fatalf("cleanPath(%q) = %q changed a clean path", p, got)
		}
		// Only slashes are removed, and never the first of a run.
		if strings.ReplaceAll(got, "/", "") != strings.ReplaceAll(p, "/", "") {
			t.Fatalf("cleanPath(%q) = %q changed more than slashes", p, got)
		}
		if strings.HasPrefix(p, "/") != strings.HasPrefix(got, "/") || strings.HasSuffix(p, "/") != strings.HasSuffix(got, "/") {
			t.Fatalf("cleanPath(%q) = %q changed a leading or trailing slash", p, got)
		}
		if cleanPath(got) != got {
			t.Fatalf("cleanPath is not idempotent on %q", p)
		}
	})
}
