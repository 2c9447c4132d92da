// Command peer is the Go peer of Hubbub's benchmark: the seed's chat server in the
// shape of gorilla/websocket's examples/chat (a hub goroutine that owns all room
// state, one reader and one writer goroutine per connection, a bounded send buffer
// whose overflow drops the client), speaking the benchmark's subset of PROTOCOL.md.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	defaultPort := 8080
	if p, err := strconv.Atoi(os.Getenv("PORT")); err == nil {
		defaultPort = p
	}
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", defaultPort, "port to listen on")
	compress := flag.Bool("compress", false, "negotiate permessage-deflate when the client offers it")
	flag.Parse()

	upgrader := websocket.Upgrader{
		ReadBufferSize:    4096,
		WriteBufferSize:   4096,
		EnableCompression: *compress,
		CheckOrigin:       func(r *http.Request) bool { return true },
	}
	hub := newHub()
	go hub.run()

	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		serveWs(hub, &upgrader, w, r)
	})
	http.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		reply := make(chan statsSnapshot)
		hub.stats <- reply
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(<-reply)
	})
	server := &http.Server{
		Addr:              *host + ":" + strconv.Itoa(*port),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Printf("go peer listening on %s (compression %v)", server.Addr, *compress)
	log.Fatal(server.ListenAndServe())
}
