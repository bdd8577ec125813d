package main

import (
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// backend is a SQL database the replica tests run against.
type backend struct {
	name   string // mysql or postgres
	envDSN string
}

var backends = []backend{{"mysql", "KMS_TEST_MYSQL_DSN"}, {"postgres", "KMS_TEST_POSTGRES_DSN"}}

// freshDatabase creates an empty database on the backend's server and
// returns kmsd's -store value for it; cleanup drops it.
func freshDatabase(t *testing.T, b backend) string {
	t.Helper()
	dsn := os.Getenv(b.envDSN)
	if dsn == "" {
		t.Skipf("%s is not set; source scripts/ci-databases.sh to run the %s replica tests", b.envDSN, b.name)
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	name := "kms_e2e_" + hex.EncodeToString(rnd[:])
	driver := map[string]string{"mysql": "mysql", "postgres": "pgx"}[b.name]
	admin, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if _, err := admin.ExecContext(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		q := "DROP DATABASE IF EXISTS " + name
		if b.name == "postgres" {
			q += " WITH (FORCE)"
		}
		admin.Exec(q)
	})
	if b.name == "mysql" {
		// root@tcp(127.0.0.1:3306)/test → mysql://root@tcp(127.0.0.1:3306)/<name>
		i := strings.LastIndex(dsn, "/")
		return "mysql://" + dsn[:i+1] + name
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

const testRootKey = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="

// startReplicas starts n kmsd processes sharing one store and one root key.
func startReplicas(t *testing.T, n int, store string) ([]*exec.Cmd, []*server) {
	t.Helper()
	var cmds []*exec.Cmd
	var servers []*server
	for range n {
		dir := t.TempDir()
		cmd, addr := startProcessArgs(t, dir, []string{"ROOT_KEY=" + testRootKey},
			"-store", store, "-root-key-env", "ROOT_KEY", "-store-query-timeout", "3s")
		cmds = append(cmds, cmd)
		servers = append(servers, &server{url: "https://" + addr, c: newClient(t, addr, dir)})
	}
	return cmds, servers
}

func TestReplicasShareState(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			_, rs := startReplicas(t, 3, freshDatabase(t, b))
			rs[0].must(t, "POST", "/user/alice?token="+tok, "user [alice] is created successfully!")
			rs[1].must(t, "POST", "/primaryKey/pk1?user=alice&token="+tok, "primaryKey [pk1] is generated successfully!")
			rs[2].must(t, "POST", "/dataKey/dk1?user=alice&token="+tok+"&primaryKeyName=pk1", "dataKey [dk1] is generated successfully!")
			key := rs[0].must(t, "GET", "/dataKey/dk1?user=alice&token="+tok+"&primaryKeyName=pk1", "")
			checkDataKey(t, key)
			for _, r := range rs[1:] {
				r.must(t, "GET", "/dataKey/dk1?user=alice&token="+tok+"&primaryKeyName=pk1", key)
			}

			// Racing creates of one name across replicas: exactly one wins.
			for round := range 5 {
				name := fmt.Sprintf("race%d", round)
				var wins, conflicts atomic.Int32
				var wg sync.WaitGroup
				for i := range 12 {
					wg.Go(func() {
						status, body, _ := rs[i%3].do(t, "POST", "/dataKey/"+name+"?user=alice&token="+tok+"&primaryKeyName=pk1")
						switch status {
						case 200:
							wins.Add(1)
						case 409:
							conflicts.Add(1)
						default:
							t.Errorf("racing create: %d %q", status, body)
						}
					})
				}
				wg.Wait()
				if wins.Load() != 1 || conflicts.Load() != 11 {
					t.Fatalf("round %d: %d wins, %d conflicts; want 1 and 11", round, wins.Load(), conflicts.Load())
				}
				k0 := rs[0].must(t, "GET", "/dataKey/"+name+"?user=alice&token="+tok+"&primaryKeyName=pk1", "")
				rs[1].must(t, "GET", "/dataKey/"+name+"?user=alice&token="+tok+"&primaryKeyName=pk1", k0)
				rs[2].must(t, "GET", "/dataKey/"+name+"?user=alice&token="+tok+"&primaryKeyName=pk1", k0)
			}

			// Concurrent load on all replicas; every key is readable, with
			// the same value, from every replica.
			keys := make(map[string]string)
			var mu sync.Mutex
			var wg sync.WaitGroup
			for w := range 9 {
				wg.Go(func() {
					r := rs[w%3]
					for i := range 20 {
						name := fmt.Sprintf("w%d-%d", w, i)
						r.must(t, "POST", "/dataKey/"+name+"?user=alice&token="+tok+"&primaryKeyName=pk1", "")
						k := r.must(t, "GET", "/dataKey/"+name+"?user=alice&token="+tok+"&primaryKeyName=pk1", "")
						mu.Lock()
						keys[name] = k
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			for name, k := range keys {
				rs[(len(name)+1)%3].must(t, "GET", "/dataKey/"+name+"?user=alice&token="+tok+"&primaryKeyName=pk1", k)
			}
		})
	}
}

// TestDatabaseRestartUnderLoad restarts the real database server while two
// replicas take writes. Requests must fail fast with 503 while it is down,
// the replicas must recover by themselves, and every key acknowledged with
// 200 must be readable afterwards. It restarts a shared server, so it runs
// only when KMS_TEST_DB_RESTART=1 (the serial phase of scripts/test.sh).
func TestDatabaseRestartUnderLoad(t *testing.T) {
	if os.Getenv("KMS_TEST_DB_RESTART") != "1" {
		t.Skip("restarts the shared database server; set KMS_TEST_DB_RESTART=1 (scripts/test.sh does, in its serial phase)")
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			store := freshDatabase(t, b)
			_, rs := startReplicas(t, 2, store)
			rs[0].seed(t, "alice", "pk1", "dk0")

			var mu sync.Mutex
			acked := map[string]bool{}
			statuses := map[int]int{}
			var slowest atomic.Int64
			var stop atomic.Bool
			var wg sync.WaitGroup
			for w := range 6 {
				wg.Go(func() {
					for i := 0; !stop.Load(); i++ {
						name := fmt.Sprintf("w%d-%d", w, i)
						start := time.Now()
						resp, err := rs[w%2].c.Post(rs[w%2].url+"/dataKey/"+name+"?user=alice&token="+tok+"&primaryKeyName=pk1", "", nil)
						if d := time.Since(start); int64(d) > slowest.Load() {
							slowest.Store(int64(d))
						}
						if err != nil {
							t.Errorf("request failed at the transport level: %v", err)
							return
						}
						resp.Body.Close()
						mu.Lock()
						statuses[resp.StatusCode]++
						if resp.StatusCode == 200 {
							acked[name] = true
						}
						mu.Unlock()
						if resp.StatusCode != 200 {
							time.Sleep(50 * time.Millisecond)
						}
					}
				})
			}
			time.Sleep(time.Second)
			out, err := exec.Command(filepath.Join("..", "..", "scripts", "restart-db.sh"), b.name, "3").CombinedOutput()
			if err != nil {
				stop.Store(true)
				wg.Wait()
				t.Fatalf("restart %s: %v\n%s", b.name, err, out)
			}
			// Recovery: a create must succeed again within 30 s.
			deadline := time.Now().Add(30 * time.Second)
			for {
				status, _, _ := rs[0].do(t, "POST", "/dataKey/probe-"+fmt.Sprint(time.Now().UnixNano())+"?user=alice&token="+tok+"&primaryKeyName=pk1")
				if status == 200 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("replica did not recover within 30 s after the database returned (last status %d)", status)
				}
				time.Sleep(200 * time.Millisecond)
			}
			time.Sleep(time.Second)
			stop.Store(true)
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			t.Logf("statuses during restart: %v; slowest request %v; %d keys acknowledged", statuses, time.Duration(slowest.Load()), len(acked))
			for code := range statuses {
				if code != 200 && code != 503 {
					t.Errorf("status %d during the restart; want only 200 or 503", code)
				}
			}
			if statuses[503] == 0 {
				t.Error("no 503 while the database was down")
			}
			if d := time.Duration(slowest.Load()); d > 10*time.Second {
				t.Errorf("a request took %v while the database was down; want fast failure", d)
			}
			for name := range acked {
				for _, r := range rs {
					status, body, _ := r.do(t, "GET", "/dataKey/"+name+"?user=alice&token="+tok+"&primaryKeyName=pk1")
					if _, err := base64.StdEncoding.DecodeString(body); status != 200 || err != nil {
						t.Fatalf("acknowledged key %s: %d %q after the restart", name, status, body)
					}
				}
			}
		})
	}
}
