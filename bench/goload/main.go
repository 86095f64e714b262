// The load generator of `npm run bench` for small requests: n connections, each sending
// one request after another over keep-alive for a fixed time, then one JSON line with the
// rate and latency percentiles. wrk would be the usual choice, but after a HEAD answer
// that carries Content-Length it waits for a body that never comes and counts nothing.
// Only the standard library, built with Debian's golang-go.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	url := flag.String("url", "", "URL to request")
	method := flag.String("method", "GET", "GET or HEAD")
	conns := flag.Int("c", 1, "connections, each with one request in flight")
	duration := flag.Duration("d", 3*time.Second, "how long to send requests")
	expect := flag.Int("expect", 200, "status every answer must have")
	var hdrs headers
	flag.Var(&hdrs, "H", "request header, Name: value (repeatable)")
	flag.Parse()

	transport := &http.Transport{MaxIdleConns: *conns, MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns, DisableCompression: true}
	client := &http.Client{Transport: transport}
	deadline := time.Now().Add(*duration)
	latencies := make([][]time.Duration, *conns)
	failures := make([]int, *conns)
	var firstFailure sync.Once
	failure := ""
	var wg sync.WaitGroup
	started := time.Now()
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				req, err := http.NewRequest(*method, *url, nil)
				if err != nil { // a bad -url or -method: every request would fail alike
					fmt.Fprintf(os.Stderr, "goload: %v\n", err)
					os.Exit(2)
				}
				for _, h := range hdrs {
					name, value, _ := strings.Cut(h, ":")
					req.Header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
				}
				t0 := time.Now()
				res, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if err == nil && res.StatusCode != *expect {
						err = fmt.Errorf("status %d", res.StatusCode)
					}
				}
				latencies[i] = append(latencies[i], time.Since(t0))
				if err != nil {
					failures[i]++
					firstFailure.Do(func() { failure = err.Error() })
				}
			}
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(started).Seconds()
	var all []time.Duration
	errors := 0
	for i := range latencies {
		all = append(all, latencies[i]...)
		errors += failures[i]
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000
	}
	out := map[string]any{
		"requests": len(all), "seconds": elapsed, "rps": float64(len(all)) / elapsed,
		"p50ms": pct(0.50), "p99ms": pct(0.99), "errors": errors, "firstError": failure,
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
