-- One connection of a username left a room.
-- KEYS: the room's users hash, this node's hash, the rooms hash, the epoch key
-- ARGV: room, username, the epoch this node counted in
-- Returns the username's connections left in the room on every node, -1 when this
-- node had none there (it was purged as dead meanwhile: nothing to undo), or -2 when
-- presence was reset since (Redis lost its data).
if redis.call('GET', KEYS[4]) ~= ARGV[3] then
    return -2
end
local field = ARGV[1] .. '\n' .. ARGV[2]
local mine = tonumber(redis.call('HGET', KEYS[2], field) or '0')
if mine <= 0 then
    return -1
end
if mine == 1 then
    redis.call('HDEL', KEYS[2], field)
else
    redis.call('HINCRBY', KEYS[2], field, -1)
end
if redis.call('HINCRBY', KEYS[3], ARGV[1], -1) <= 0 then
    redis.call('HDEL', KEYS[3], ARGV[1])
end
local left = redis.call('HINCRBY', KEYS[1], ARGV[2], -1)
if left <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[2])
    left = 0
end
return left
