// Package telemetry defines the Prometheus metrics of kmsd and a Store
// decorator that measures store latency. Metrics never carry key material,
// tokens or user-supplied names as labels (names would explode cardinality
// and leak tenants' data); routes are the route table's patterns.
package telemetry

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ppmlkms/kms/internal/kms"
)

// Metrics holds every metric kmsd exports, registered in Registry.
type Metrics struct {
	Registry      *prometheus.Registry
	Requests      *prometheus.CounterVec   // route, method, code
	Latency       *prometheus.HistogramVec // route
	KeyOps        *prometheus.CounterVec   // op, result
	AuthFailures  *prometheus.CounterVec   // reason
	StoreLatency  *prometheus.HistogramVec // op, result
	CacheRequests *prometheus.CounterVec   // cache, result
}

// New builds and registers the metrics, plus the Go runtime and process
// collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kms_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kms_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		KeyOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kms_key_operations_total", Help: "Key operations by operation and result.",
		}, []string{"op", "result"}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kms_auth_failures_total", Help: "Failed authentications by reason.",
		}, []string{"reason"}),
		StoreLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kms_store_duration_seconds", Help: "Store call latency by operation and result.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1},
		}, []string{"op", "result"}),
		CacheRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kms_cache_requests_total", Help: "Cache lookups by cache (auth, keys) and result (hit, miss).",
		}, []string{"cache", "result"}),
	}
	m.Registry.MustRegister(m.Requests, m.Latency, m.KeyOps, m.AuthFailures, m.StoreLatency, m.CacheRequests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// CacheFunc returns a callback that counts lookups of the named cache.
func (m *Metrics) CacheFunc(cache string) func(hit bool) {
	hit, miss := m.CacheRequests.WithLabelValues(cache, "hit"), m.CacheRequests.WithLabelValues(cache, "miss")
	return func(h bool) {
		if h {
			hit.Inc()
		} else {
			miss.Inc()
		}
	}
}

// Store wraps a kms.Store and records the latency of every call.
type Store struct {
	kms.Store
	m *Metrics
}

var _ kms.Store = (*Store)(nil)

// InstrumentStore returns s measured into m.
func InstrumentStore(s kms.Store, m *Metrics) *Store { return &Store{Store: s, m: m} }

func (s *Store) observe(op string, start time.Time, err error) {
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, kms.ErrNotFound):
		result = "not_found"
	case errors.Is(err, kms.ErrExists):
		result = "exists"
	case errors.Is(err, kms.ErrConflict):
		result = "conflict"
	default:
		result = "error"
	}
	s.m.StoreLatency.WithLabelValues(op, result).Observe(time.Since(start).Seconds())
}

// CreateUser implements kms.Store.
func (s *Store) CreateUser(ctx context.Context, u kms.User) (err error) {
	defer func(t time.Time) { s.observe("create_user", t, err) }(time.Now())
	return s.Store.CreateUser(ctx, u)
}

// User implements kms.Store.
func (s *Store) User(ctx context.Context, name string) (u kms.User, err error) {
	defer func(t time.Time) { s.observe("user", t, err) }(time.Now())
	return s.Store.User(ctx, name)
}

// CreatePrimaryKey implements kms.Store.
func (s *Store) CreatePrimaryKey(ctx context.Context, k kms.PrimaryKey) (err error) {
	defer func(t time.Time) { s.observe("create_primary_key", t, err) }(time.Now())
	return s.Store.CreatePrimaryKey(ctx, k)
}

// PrimaryKey implements kms.Store.
func (s *Store) PrimaryKey(ctx context.Context, owner, name string, version int) (k kms.PrimaryKey, err error) {
	defer func(t time.Time) { s.observe("primary_key", t, err) }(time.Now())
	return s.Store.PrimaryKey(ctx, owner, name, version)
}

// CreateDataKey implements kms.Store.
func (s *Store) CreateDataKey(ctx context.Context, k kms.DataKey) (err error) {
	defer func(t time.Time) { s.observe("create_data_key", t, err) }(time.Now())
	return s.Store.CreateDataKey(ctx, k)
}

// DataKey implements kms.Store.
func (s *Store) DataKey(ctx context.Context, owner, primary, name string) (k kms.DataKey, err error) {
	defer func(t time.Time) { s.observe("data_key", t, err) }(time.Now())
	return s.Store.DataKey(ctx, owner, primary, name)
}

// UpdateUser implements kms.Store.
func (s *Store) UpdateUser(ctx context.Context, u kms.User) (err error) {
	defer func(t time.Time) { s.observe("update_user", t, err) }(time.Now())
	return s.Store.UpdateUser(ctx, u)
}

// ListUsers implements kms.Store.
func (s *Store) ListUsers(ctx context.Context) (us []kms.User, err error) {
	defer func(t time.Time) { s.observe("list_users", t, err) }(time.Now())
	return s.Store.ListUsers(ctx)
}

// ListPrimaryKeys implements kms.Store.
func (s *Store) ListPrimaryKeys(ctx context.Context, owner string) (ks []kms.PrimaryKey, err error) {
	defer func(t time.Time) { s.observe("list_primary_keys", t, err) }(time.Now())
	return s.Store.ListPrimaryKeys(ctx, owner)
}

// PrimaryKeyVersions implements kms.Store.
func (s *Store) PrimaryKeyVersions(ctx context.Context, owner, name string) (ks []kms.PrimaryKey, err error) {
	defer func(t time.Time) { s.observe("primary_key_versions", t, err) }(time.Now())
	return s.Store.PrimaryKeyVersions(ctx, owner, name)
}

// PrimaryKeysToRewrap implements kms.Store.
func (s *Store) PrimaryKeysToRewrap(ctx context.Context, rootVersion, limit int) (ks []kms.PrimaryKey, err error) {
	defer func(t time.Time) { s.observe("primary_keys_to_rewrap", t, err) }(time.Now())
	return s.Store.PrimaryKeysToRewrap(ctx, rootVersion, limit)
}

// RewrapPrimaryKey implements kms.Store.
func (s *Store) RewrapPrimaryKey(ctx context.Context, k kms.PrimaryKey, oldRootVersion int) (err error) {
	defer func(t time.Time) { s.observe("rewrap_primary_key", t, err) }(time.Now())
	return s.Store.RewrapPrimaryKey(ctx, k, oldRootVersion)
}

// DestroyPrimaryKey implements kms.Store.
func (s *Store) DestroyPrimaryKey(ctx context.Context, owner, name string) (err error) {
	defer func(t time.Time) { s.observe("destroy_primary_key", t, err) }(time.Now())
	return s.Store.DestroyPrimaryKey(ctx, owner, name)
}

// Doc implements kms.Store.
func (s *Store) Doc(ctx context.Context, kind, id string) (d kms.Doc, err error) {
	defer func(t time.Time) { s.observe("doc", t, err) }(time.Now())
	return s.Store.Doc(ctx, kind, id)
}

// PutDoc implements kms.Store.
func (s *Store) PutDoc(ctx context.Context, d kms.Doc) (_ kms.Doc, err error) {
	defer func(t time.Time) { s.observe("put_doc", t, err) }(time.Now())
	return s.Store.PutDoc(ctx, d)
}

// DeleteDoc implements kms.Store.
func (s *Store) DeleteDoc(ctx context.Context, kind, id string, revision int64) (err error) {
	defer func(t time.Time) { s.observe("delete_doc", t, err) }(time.Now())
	return s.Store.DeleteDoc(ctx, kind, id, revision)
}

// ListDocs implements kms.Store.
func (s *Store) ListDocs(ctx context.Context, kind, prefix string) (ds []kms.Doc, err error) {
	defer func(t time.Time) { s.observe("list_docs", t, err) }(time.Now())
	return s.Store.ListDocs(ctx, kind, prefix)
}
