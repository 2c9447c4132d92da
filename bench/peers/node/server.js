'use strict';
// Node peer of Hubbub's benchmark: the benchmark's subset of PROTOCOL.md (welcome, join,
// message, leave, typing, online_users, /stats) written the way a ws tutorial writes a chat
// server: a Map of rooms to Sets of sockets, JSON.stringify once, ws.send to every member.

const http = require('node:http');
const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const options = { host: '127.0.0.1', port: Number(process.env.PORT || 8080), compress: false };
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === '--port') options.port = Number(argv[(i += 1)]);
    else if (argv[i] === '--host') options.host = argv[(i += 1)];
    else if (argv[i] === '--compress') options.compress = true;
  }
  return options;
}

const options = parseArgs(process.argv.slice(2));
const started = Date.now();
const rooms = new Map(); // room name -> Set of sockets
let messagesTotal = 0;
let lastConnectionId = 0;
const nextId = new Map(); // room name -> last message id

function broadcast(room, data, except) {
  const members = rooms.get(room);
  if (!members) return;
  for (const ws of members) {
    if (ws !== except && ws.readyState === ws.OPEN) ws.send(data);
  }
}

function onlineUsers(room) {
  const users = [...new Set([...(rooms.get(room) || [])].map((ws) => ws.username))].sort();
  return JSON.stringify({ type: 'online_users', users, count: users.length, room });
}

function roomOf(ws, room) {
  if (room) return ws.rooms.has(room) ? room : null;
  return ws.rooms.size === 1 ? ws.rooms.values().next().value : null;
}

function leave(ws, room) {
  ws.rooms.delete(room);
  const members = rooms.get(room);
  if (!members) return;
  members.delete(ws);
  if (members.size === 0) {
    rooms.delete(room);
    return;
  }
  broadcast(room, JSON.stringify({ type: 'user_left', username: ws.username, room }));
  broadcast(room, onlineUsers(room));
}

function handle(ws, event) {
  switch (event.type) {
    case 'join': {
      const room = event.room;
      if (typeof room !== 'string' || room === '' || ws.rooms.has(room)) return;
      if (!ws.username) {
        const hex = Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
        ws.username = event.username || `User-${hex}`;
      }
      if (!rooms.has(room)) rooms.set(room, new Set());
      rooms.get(room).add(ws);
      ws.rooms.add(room);
      broadcast(room, JSON.stringify({ type: 'user_joined', username: ws.username, room }));
      broadcast(room, onlineUsers(room));
      break;
    }
    case 'message': {
      const room = roomOf(ws, event.room);
      if (!room || !event.content) return;
      const id = (nextId.get(room) || 0) + 1;
      nextId.set(room, id);
      messagesTotal += 1;
      broadcast(room, JSON.stringify({
        type: 'message', from: ws.username, content: event.content,
        timestamp: new Date().toISOString(), room, id,
      }));
      break;
    }
    case 'typing': {
      const room = roomOf(ws, event.room);
      if (room) broadcast(room, JSON.stringify({ type: 'typing', username: ws.username, room }), ws);
      break;
    }
    case 'leave':
      if (event.room) {
        if (ws.rooms.has(event.room)) leave(ws, event.room);
      } else {
        for (const room of [...ws.rooms]) leave(ws, room);
      }
      break;
    default:
      break;
  }
}

function stats() {
  const sockets = [...wss.clients];
  const uptime = (Date.now() - started) / 1000;
  return {
    connections: sockets.length,
    rooms: rooms.size,
    users: new Set(sockets.filter((ws) => ws.username).map((ws) => ws.username)).size,
    messages_total: messagesTotal,
    messages_per_second: messagesTotal / uptime,
    uptime_seconds: uptime,
    node: 'node-peer',
  };
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(stats()));
    return;
  }
  res.writeHead(404);
  res.end();
});

const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: options.compress });

wss.on('connection', (ws) => {
  lastConnectionId += 1;
  ws.username = '';
  ws.rooms = new Set();
  ws.send(JSON.stringify({
    type: 'welcome', message: 'Connected to server', connection_id: `c${lastConnectionId}`, protocol: 1,
  }));
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    let event;
    try {
      event = JSON.parse(data.toString());
    } catch {
      return;
    }
    if (event && typeof event === 'object') handle(ws, event);
  });
  ws.on('close', () => {
    for (const room of [...ws.rooms]) leave(ws, room);
  });
  ws.on('error', () => {});
});

server.listen(options.port, options.host, () => {
  console.log(`node peer listening on ${options.host}:${options.port} (compression ${options.compress})`);
});
