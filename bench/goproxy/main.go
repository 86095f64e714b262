// The Go anchor of `npm run bench`: net/http/httputil.ReverseProxy in front of the
// registry, the way a Go shop would front one. Only the standard library, built with
// Debian's golang-go. Usage: goproxy -listen 127.0.0.1:PORT -upstream http://127.0.0.1:PORT
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	upstream := flag.String("upstream", "", "registry origin, e.g. http://127.0.0.1:5000")
	flag.Parse()
	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		log.Fatalf("-upstream %q is not an origin", *upstream)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// The default transport keeps 2 idle connections per host: too few for 32 clients.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = 256
	transport.MaxIdleConnsPerHost = 256
	proxy.Transport = transport
	// NewSingleHostReverseProxy keeps the client's Host header, so the registry builds its
	// upload Locations for this proxy (as nginx's proxy_set_header Host $http_host does).
	server := &http.Server{Addr: *listen, Handler: proxy, ReadHeaderTimeout: time.Minute}
	log.Fatal(server.ListenAndServe())
}
