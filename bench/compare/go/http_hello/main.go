// Go side of the http_hello workload (../../WORKLOADS.md): net/http with a
// handler that answers "Hello, World!" (keep-alive is net/http's default).
//
// Usage: http_hello [--workers N] [--port P]; prints "listening on ADDR".
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
)

func main() {
	workers := flag.Int("workers", 2, "GOMAXPROCS")
	port := flag.Int("port", 8080, "port on 127.0.0.1 (0: any)")
	flag.Parse()
	runtime.GOMAXPROCS(*workers)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "http_hello:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", l.Addr())
	hello := []byte("Hello, World!")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "13")
		w.Write(hello)
	})
	if err := http.Serve(l, h); err != nil {
		fmt.Fprintln(os.Stderr, "http_hello:", err)
		os.Exit(1)
	}
}
