// Command echo is Skiff's demo workload: an HTTP server on :8080 that answers
// every request with the pod name it runs in and the request path, so a
// client can tell which replica behind a Service answered.
//
//	$ curl http://10.88.0.5:8080/hello
//	web-7f9c4 /hello
//
// The same port answers UDP: every datagram gets "<pod name> <datagram>\n" back,
// so UDP Services can be tested the same way.
//
// The pod name comes from $HOSTNAME, which the node agent sets to the pod
// name. The listen address can be changed with -listen or $ECHO_LISTEN.
// SIGTERM drains open connections for up to five seconds, as a well-behaved
// workload should within its termination grace period.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", envOr("ECHO_LISTEN", ":8080"), "address to listen on")
	flag.Parse()

	name := os.Getenv("HOSTNAME")
	if name == "" {
		name, _ = os.Hostname()
	}

	srv := &http.Server{Addr: *listen, Handler: handler(name), ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()

	udp, err := net.ListenPacket("udp", *listen)
	if err != nil {
		log.Fatalf("echo: %v", err)
	}
	go func() {
		<-ctx.Done()
		udp.Close()
	}()
	go serveUDP(udp, name)

	log.Printf("echo %s listening on %s (TCP and UDP)", name, *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("echo: %v", err)
	}
	log.Printf("echo %s stopped", name)
}

// serveUDP answers every datagram with "<name> <datagram>\n" until pc is closed.
func serveUDP(pc net.PacketConn, name string) {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo(fmt.Appendf(nil, "%s %s\n", name, buf[:n]), from)
	}
}

// handler answers every request with "<name> <path>\n".
func handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s %s\n", name, r.URL.Path)
	})
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
