package main

import (
	"crypto/tls"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ppmlkms/kms/internal/certs"
	"github.com/ppmlkms/kms/internal/config"
)

func TestBuckets(t *testing.T) {
	prevHi := uint64(0)
	for i := 0; i < nBuckets; i++ {
		lo, hi := bucketRange(i)
		if i > 0 && lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d = [%d, %d] but bucketOf gives %d, %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if lo > 2*subCount && float64(hi-lo+1)/float64(lo) > 1.0/subCount {
			t.Fatalf("bucket %d = [%d, %d] wider than 1/%d", i, lo, hi, subCount)
		}
		prevHi = hi
		if hi == math.MaxUint64 {
			return
		}
	}
	t.Fatalf("buckets end at %d, before the largest uint64", prevHi)
}

func TestQuantile(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h hist
	var exact []time.Duration
	for i := 0; i < 100000; i++ {
		// Log-uniform between 1 µs and 1 s, as latencies spread.
		d := time.Duration(math.Exp(r.Float64()*math.Log(1e6)) * 1e3)
		exact = append(exact, d)
		h.record(d)
	}
	slices.Sort(exact)
	for _, q := range []float64{0.001, 0.5, 0.9, 0.99, 0.999} {
		want := exact[int(math.Ceil(q*float64(len(exact))))-1]
		got := h.quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 1.0/subCount {
			t.Errorf("quantile(%v) = %v, exact %v (%.2f%% off)", q, got, want, rel*100)
		}
	}
	if h.quantile(1) != exact[len(exact)-1] || h.min != uint64(exact[0]) {
		t.Errorf("max %v min %v, want %v %v", h.quantile(1), h.min, exact[len(exact)-1], exact[0])
	}

	var small hist
	for _, d := range []time.Duration{5, 1, 3, 2, 4} {
		small.record(d)
	}
	if small.quantile(0.5) != 3 || small.quantile(0.99) != 5 || small.quantile(0) != 1 {
		t.Errorf("small: p50 %v p99 %v p0 %v, want 3 5 1", small.quantile(0.5), small.quantile(0.99), small.quantile(0))
	}
	var merged hist
	merged.merge(&small)
	merged.merge(&h)
	if merged.n != h.n+5 || merged.min != 1 || merged.max != h.max {
		t.Errorf("merge: n %d min %d max %d", merged.n, merged.min, merged.max)
	}
	if (&hist{}).quantile(0.5) != 0 {
		t.Error("empty histogram must report 0")
	}
}

// TestFloorMatchesKmsd keeps the floor server configured as kmsd is.
func TestFloorMatchesKmsd(t *testing.T) {
	cert, err := selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	got, want := floorTLSConfig(cert), certs.ServerConfig(cert)
	if got.MinVersion != want.MinVersion || !slices.Equal(got.CipherSuites, want.CipherSuites) ||
		!slices.Equal(got.NextProtos, want.NextProtos) || !slices.Equal(got.CurvePreferences, want.CurvePreferences) {
		t.Errorf("floor TLS config differs from kmsd's certs.ServerConfig")
	}
	srv, def := newFloorServer(cert), config.Default()
	if srv.ReadHeaderTimeout != time.Duration(def.ReadHeaderTimeout) || srv.ReadTimeout != time.Duration(def.ReadTimeout) ||
		srv.WriteTimeout != time.Duration(def.WriteTimeout) || srv.IdleTimeout != time.Duration(def.IdleTimeout) ||
		srv.MaxHeaderBytes != def.MaxHeaderBytes {
		t.Errorf("floor server timeouts differ from kmsd's defaults")
	}
}

func startFloor(t *testing.T) *target {
	t.Helper()
	cert, err := selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newFloorServer(cert)
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()
	return &target{name: "floor", base: "https://" + addr, hostport: addr,
		tlsConf: &tls.Config{InsecureSkipVerify: true}, user: "u", token: "t", primary: "p"}
}

// TestFloorServer checks that the floor answers 24 bytes over HTTP/1.1 and
// runs a very short load with both clients against it.
func TestFloorServer(t *testing.T) {
	ft := startFloor(t)
	tr := &http.Transport{TLSClientConfig: ft.tlsConf, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(ft.base + "/dataKey/x?user=u")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(b) != 24 || resp.Proto != "HTTP/1.1" || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("floor answered %s %d %q", resp.Proto, resp.StatusCode, b)
	}

	if err := ft.setup(3, "test", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if len(ft.keys) != 3 || string(ft.expected[0]) != string(floorBody) {
		t.Fatalf("setup: keys %v expected %q", ft.keys, ft.expected)
	}
	for _, client := range []string{"http", "raw"} {
		res, err := runLoad(loadSpec{target: ft, scenario: "get", client: client, conns: 2,
			warmup: 20 * time.Millisecond, duration: 150 * time.Millisecond, timeout: 5 * time.Second, tag: "t"},
			ft.keys, ft.expected)
		if err != nil {
			t.Fatal(err)
		}
		if res.errors != 0 || res.hist[opGet].n == 0 || res.dials != 2 {
			t.Errorf("%s client: %d errors %v, %d requests, %d dials (want 0, >0, 2)", client, res.errors, res.errSample, res.hist[opGet].n, res.dials)
		}
	}
}

// TestErrorsCounted: wrong bodies and statuses are errors, not throughput.
func TestErrorsCounted(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "POST" && n.Add(1)%2 == 0:
			http.Error(w, "boom", 500)
		case r.Method == "POST":
			io.WriteString(w, "dataKey ["+strings.TrimPrefix(r.URL.Path, "/dataKey/")+"] is generated successfully!")
		default:
			io.WriteString(w, "short")
		}
	}))
	defer srv.Close()
	u := strings.TrimPrefix(srv.URL, "https://")
	tg := &target{name: "t", base: srv.URL, hostport: u, tlsConf: &tls.Config{InsecureSkipVerify: true}, user: "u", token: "t", primary: "p"}
	for _, client := range []string{"http", "raw"} {
		for _, sc := range []string{"get", "post"} {
			res, err := runLoad(loadSpec{target: tg, scenario: sc, client: client, conns: 1, warmup: 0,
				duration: 50 * time.Millisecond, timeout: 5 * time.Second, tag: "t"}, []string{"k"}, [][]byte{[]byte("AAECAwQFBgcICQoLDA0ODw==")})
			if err != nil {
				t.Fatal(err)
			}
			if res.errors == 0 {
				t.Errorf("%s %s: no errors counted", client, sc)
			}
			if sc == "get" && res.total() != 0 {
				t.Errorf("%s get: %d bad answers counted as successes", client, res.total())
			}
			if sc == "post" && res.total() == 0 {
				t.Errorf("%s post: the good answers were not counted", client)
			}
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:1", "[::1]:1", "localhost:1", "127.1.2.3:1"} {
		if err := checkLoopback(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"10.0.0.1:1", "example.com:443", "0.0.0.0:1", "1.2.3.4"} {
		if checkLoopback(bad) == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, err := parseFlags([]string{"-url", "https://192.0.2.1:9876"}, io.Discard); err == nil {
		t.Error("-url with a non-loopback host accepted")
	}
	if _, err := parseFlags([]string{"-kmsd", "x", "-duration", "1h"}, io.Discard); err == nil {
		t.Error("-duration 1h accepted")
	}
	if o, err := parseFlags([]string{"-kmsd", "x", "-floor"}, io.Discard); err != nil || o.conns != 32 || !slices.Equal(o.scenarios, []string{"get", "post"}) {
		t.Errorf("defaults: %+v %v", o, err)
	}
}

func TestFormat(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567"} {
		if got := fmtRate(in); got != want {
			t.Errorf("fmtRate(%v) = %q, want %q", in, got, want)
		}
	}
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median = %v", got)
	}
	if got := fmtDur(1500 * time.Microsecond); got != "1.50 ms" {
		t.Errorf("fmtDur = %q", got)
	}
}
