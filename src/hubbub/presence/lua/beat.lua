-- Keep a node alive until Redis's clock plus its time to live.
-- KEYS: the nodes sorted set (node -> the millisecond it dies)
-- ARGV: node id, time to live in milliseconds
-- Returns 1 when the node was known, 0 when it is new or had been purged as dead.
local now = redis.call('TIME')
local until_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[2])
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], until_ms, ARGV[1])
if known then
    return 1
end
return 0
