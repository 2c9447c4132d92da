package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"sort"
	"time"
)

// inbound is one decoded client event, handed from a reader goroutine to the hub.
type inbound struct {
	client *Client
	event  clientEvent
}

type clientEvent struct {
	Type     string `json:"type"`
	Room     string `json:"room"`
	Username string `json:"username"`
	Content  string `json:"content"`
}

type statsSnapshot struct {
	Connections       int     `json:"connections"`
	Rooms             int     `json:"rooms"`
	Users             int     `json:"users"`
	MessagesTotal     int64   `json:"messages_total"`
	MessagesPerSecond float64 `json:"messages_per_second"`
	UptimeSeconds     float64 `json:"uptime_seconds"`
	Node              string  `json:"node"`
}

// Hub owns every room and member; only its run goroutine touches them.
type Hub struct {
	clients       map[*Client]bool
	rooms         map[string]map[*Client]bool
	nextID        map[string]int64
	register      chan *Client
	unregister    chan *Client
	inbound       chan inbound
	stats         chan chan statsSnapshot
	started       time.Time
	messagesTotal int64
	lastConnID    int64
	dropped       []*Client
}

func newHub() *Hub {
	return &Hub{
		clients:    make(map[*Client]bool),
		rooms:      make(map[string]map[*Client]bool),
		nextID:     make(map[string]int64),
		register:   make(chan *Client),
		unregister: make(chan *Client),
		inbound:    make(chan inbound, 1024),
		stats:      make(chan chan statsSnapshot),
		started:    time.Now(),
	}
}

func (h *Hub) run() {
	for {
		select {
		case c := <-h.register:
			h.lastConnID++
			c.id = fmt.Sprintf("c%d", h.lastConnID)
			h.clients[c] = true
			h.send(c, mustJSON(map[string]interface{}{
				"type": "welcome", "message": "Connected to server",
				"connection_id": c.id, "protocol": 1,
			}))
		case c := <-h.unregister:
			if h.clients[c] {
				h.drop(c)
			}
		case in := <-h.inbound:
			if h.clients[in.client] {
				h.handle(in.client, in.event)
			}
		case reply := <-h.stats:
			reply <- h.snapshot()
		}
		h.settleDropped()
	}
}

func (h *Hub) handle(c *Client, e clientEvent) {
	switch e.Type {
	case "join":
		if e.Room == "" {
			return
		}
		if c.username == "" {
			c.username = e.Username
			if c.username == "" {
				c.username = fmt.Sprintf("User-%08x", rand.Uint32())
			}
		}
		members := h.rooms[e.Room]
		if members == nil {
			members = make(map[*Client]bool)
			h.rooms[e.Room] = members
		}
		if members[c] {
			return
		}
		members[c] = true
		c.rooms[e.Room] = true
		h.broadcast(e.Room, nil, mustJSON(map[string]interface{}{
			"type": "user_joined", "username": c.username, "room": e.Room,
		}))
		h.broadcast(e.Room, nil, h.onlineUsers(e.Room))
	case "message":
		room := h.roomOf(c, e.Room)
		if room == "" || e.Content == "" {
			return
		}
		h.nextID[room]++
		h.messagesTotal++
		h.broadcast(room, nil, mustJSON(map[string]interface{}{
			"type": "message", "from": c.username, "content": e.Content,
			"timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
			"room":      room, "id": h.nextID[room],
		}))
	case "typing":
		if room := h.roomOf(c, e.Room); room != "" {
			h.broadcast(room, c, mustJSON(map[string]interface{}{
				"type": "typing", "username": c.username, "room": room,
			}))
		}
	case "leave":
		if e.Room == "" {
			for room := range c.rooms {
				h.leave(c, room)
			}
		} else if c.rooms[e.Room] {
			h.leave(c, e.Room)
		}
	}
}

// roomOf picks the event's room, or the only room joined when it names none (as the seed does).
func (h *Hub) roomOf(c *Client, room string) string {
	if room != "" {
		if c.rooms[room] {
			return room
		}
		return ""
	}
	if len(c.rooms) == 1 {
		for only := range c.rooms {
			return only
		}
	}
	return ""
}

func (h *Hub) leave(c *Client, room string) {
	delete(c.rooms, room)
	members := h.rooms[room]
	delete(members, c)
	if len(members) == 0 {
		delete(h.rooms, room)
		return
	}
	h.broadcast(room, nil, mustJSON(map[string]interface{}{
		"type": "user_left", "username": c.username, "room": room,
	}))
	h.broadcast(room, nil, h.onlineUsers(room))
}

func (h *Hub) onlineUsers(room string) []byte {
	seen := make(map[string]bool)
	users := []string{}
	for m := range h.rooms[room] {
		if !seen[m.username] {
			seen[m.username] = true
			users = append(users, m.username)
		}
	}
	sort.Strings(users)
	return mustJSON(map[string]interface{}{
		"type": "online_users", "users": users, "count": len(users), "room": room,
	})
}

// broadcast queues the same bytes for every member; a member whose buffer is full is dropped.
func (h *Hub) broadcast(room string, except *Client, msg []byte) {
	for m := range h.rooms[room] {
		if m != except {
			h.send(m, msg)
		}
	}
}

func (h *Hub) send(c *Client, msg []byte) {
	if c.closed {
		return
	}
	select {
	case c.send <- msg:
	default:
		c.closed = true
		close(c.send)
		h.dropped = append(h.dropped, c)
	}
}

// drop forgets a client; its rooms hear about it as if it had left.
func (h *Hub) drop(c *Client) {
	delete(h.clients, c)
	for room := range c.rooms {
		h.leave(c, room)
	}
	if !c.closed {
		c.closed = true
		close(c.send)
	}
}

func (h *Hub) settleDropped() {
	for len(h.dropped) > 0 {
		c := h.dropped[0]
		h.dropped = h.dropped[1:]
		if h.clients[c] {
			h.drop(c)
		}
	}
}

func (h *Hub) snapshot() statsSnapshot {
	users := make(map[string]bool)
	for c := range h.clients {
		if c.username != "" {
			users[c.username] = true
		}
	}
	uptime := time.Since(h.started).Seconds()
	return statsSnapshot{
		Connections: len(h.clients), Rooms: len(h.rooms), Users: len(users),
		MessagesTotal: h.messagesTotal, MessagesPerSecond: float64(h.messagesTotal) / uptime,
		UptimeSeconds: uptime, Node: "go-peer",
	}
}

func mustJSON(v interface{}) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
