-- One more connection of a username in a room, unless the room is full.
-- KEYS: the room's users hash, this node's hash, the rooms hash, the epoch key
-- ARGV: room, username, limit, the epoch this node counted in
-- Returns -1 when full, -2 when presence was reset since (Redis lost its data), else the
-- username's connections in the room, then the room's.
if redis.call('GET', KEYS[4]) ~= ARGV[4] then
    return {-2, 0}
end
local members = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
if members >= tonumber(ARGV[3]) then
    return {-1, members}
end
redis.call('HINCRBY', KEYS[2], ARGV[1] .. '\n' .. ARGV[2], 1)
members = redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
return {redis.call('HINCRBY', KEYS[1], ARGV[2], 1), members}
