-- Remove every dead node's connections, once: the first caller does the work and the
-- others find nothing left. Keys of rooms are built here from the prefix, so this needs
-- a single Redis server, not a Redis Cluster.
-- KEYS: the nodes sorted set, the rooms hash, the nodes' reports hash
-- ARGV: the key prefix, and optionally one node to remove whether dead or not (a node
-- leaving cleanly)
-- Returns a flat list: how many nodes were removed, then room, username, room,
-- username... left with no connection.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local nodes = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if ARGV[2] then
    nodes = {ARGV[2]}
end
local gone = {}
for _, node in ipairs(nodes) do
    local node_key = ARGV[1] .. 'node:' .. node
    local entries = redis.call('HGETALL', node_key)
    for i = 1, #entries, 2 do
        local field, count = entries[i], tonumber(entries[i + 1])
        local cut = string.find(field, '\n', 1, true)
        local room, username = string.sub(field, 1, cut - 1), string.sub(field, cut + 1)
        local users_key = ARGV[1] .. 'room:' .. room .. ':users'
        if redis.call('HINCRBY', users_key, username, -count) <= 0 then
            redis.call('HDEL', users_key, username)
            table.insert(gone, room)
            table.insert(gone, username)
        end
        if redis.call('HINCRBY', KEYS[2], room, -count) <= 0 then
            redis.call('HDEL', KEYS[2], room)
        end
    end
    redis.call('DEL', node_key)
    redis.call('HDEL', KEYS[3], node)
    redis.call('ZREM', KEYS[1], node)
end
if ARGV[2] and redis.call('ZCARD', KEYS[1]) == 0 then
    -- The last node left cleanly: presence is empty, and the next one starts it anew.
    redis.call('DEL', ARGV[1] .. 'epoch')
end
table.insert(gone, 1, #nodes)
return gone
